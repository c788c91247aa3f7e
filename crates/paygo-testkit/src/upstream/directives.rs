//! The directives a test writes into the last user message, `[fake:NAME]` or
//! `[fake:NAME=VALUE]`, which pass through a proxy unchanged.

/// What the directives of one request ask for. Several may be combined in one message,
/// such as `[fake:tokens=5][fake:cut=2]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directives {
    /// `[fake:error=CODE]`: answer with this HTTP status and an OpenAI error body.
    pub error: Option<u16>,
    /// `[fake:delay=MS]`: sleep this long before answering (after `latency_ms`).
    pub delay_ms: Option<u64>,
    /// `[fake:tokens=N]`: the completion length, instead of the options' default.
    pub tokens: Option<u64>,
    /// `[fake:no-usage]`: no `usage` in the answer (streams never send the usage chunk,
    /// and a Responses stream ends with `"usage": null`).
    pub no_usage: bool,
    /// `[fake:cut=K]` (streams): abort the connection after K content chunks, with no
    /// usage and no `[DONE]`.
    pub cut: Option<u64>,
    /// `[fake:end=K]` (streams): end the body cleanly after K content chunks, with no
    /// usage and no `[DONE]` (a stream that stops early without a connection error).
    pub end: Option<u64>,
    /// `[fake:cached=N]`: report N of the prompt tokens as cached (at most the prompt).
    pub cached: Option<u64>,
    /// `[fake:reasoning=N]`: report N of the completion tokens as reasoning (at most the
    /// completion).
    pub reasoning: Option<u64>,
    /// `[fake:stall]`: never answer (streams: stall after the first chunk) until the
    /// client goes away or the server shuts down.
    pub stall: bool,
}

impl Directives {
    /// The directives written in `text`; text outside `[fake:...]` is ignored.
    ///
    /// # Errors
    ///
    /// A message saying which directive was unknown or malformed, so that a typo in a
    /// test fails loudly (the server answers it with a 400).
    pub fn parse(text: &str) -> Result<Directives, String> {
        let mut out = Directives::default();
        let mut rest = text;
        while let Some(start) = rest.find("[fake:") {
            let after = &rest[start + "[fake:".len()..];
            let Some(end) = after.find(']') else {
                return Err("unterminated fake directive: expected `[fake:NAME]` or `[fake:NAME=VALUE]`".into());
            };
            out.apply(&after[..end])?;
            rest = &after[end + 1..];
        }
        Ok(out)
    }

    fn apply(&mut self, directive: &str) -> Result<(), String> {
        let (name, value) = match directive.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (directive.trim(), None),
        };
        let number = |v: Option<&str>| -> Result<u64, String> {
            v.and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| format!("fake directive `{name}` has no valid number: expected `[fake:{name}=N]`"))
        };
        match (name, value) {
            ("error", v) => {
                let code = number(v)?;
                if !(400..=599).contains(&code) {
                    return Err(format!("fake error status {code} is out of range: expected 400 to 599"));
                }
                self.error = Some(code as u16);
            }
            ("delay", v) => self.delay_ms = Some(number(v)?),
            ("tokens", v) => self.tokens = Some(number(v)?),
            ("cut", v) => self.cut = Some(number(v)?),
            ("end", v) => self.end = Some(number(v)?),
            ("cached", v) => self.cached = Some(number(v)?),
            ("reasoning", v) => self.reasoning = Some(number(v)?),
            ("no-usage", None) => self.no_usage = true,
            ("stall", None) => self.stall = true,
            _ => {
                return Err(format!(
                    "unknown fake directive `{directive}`: expected error=CODE, delay=MS, tokens=N, cached=N, reasoning=N, no-usage, cut=K, end=K or stall"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Directives;

    #[test]
    fn combined_directives_are_all_read() {
        let d = Directives::parse("hi [fake:tokens=5] there [fake:cut=2][fake:no-usage]").unwrap();
        assert_eq!(d.tokens, Some(5));
        assert_eq!(d.cut, Some(2));
        assert!(d.no_usage);
        assert!(!d.stall);
        assert_eq!(Directives::parse("plain text").unwrap(), Directives::default());
        let d = Directives::parse("[fake:cached=7] text [fake:reasoning=3]").unwrap();
        assert_eq!((d.cached, d.reasoning), (Some(7), Some(3)));
    }

    #[test]
    fn typos_are_refused() {
        assert!(Directives::parse("[fake:tokns=5]").is_err());
        assert!(Directives::parse("[fake:tokens=x]").is_err());
        assert!(Directives::parse("[fake:error=200]").is_err());
        assert!(Directives::parse("[fake:stall").is_err());
        assert!(Directives::parse("[fake:cached]").is_err());
    }
}
