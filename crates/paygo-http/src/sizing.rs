//! The size of a request: an upper bound on its prompt tokens, and its output limit.
