//! The fake OpenAI-compatible upstream (`paygo_testkit::upstream`) as a process, for the load
//! benchmark (`benches/load/run.sh`), where LiteLLM and paygo's proxy both point at it.
//!
//! ```sh
//! cargo run --release -p paygo-testkit --features upstream --example fake_upstream -- \
//!     [--listen 127.0.0.1:PORT] [--latency-ms N] [--chunk-delay-ms N] [--tokens N] [--threads N]
//! ```
//!
//! Prints `listening on http://ADDR`, serves until Ctrl-C or SIGTERM, then prints how many
//! calls it served.

use std::net::SocketAddr;
use std::process::ExitCode;

use paygo_testkit::upstream::{FakeUpstream, UpstreamOptions};

const USAGE: &str =
    "usage: fake_upstream [--listen ADDR] [--latency-ms N] [--chunk-delay-ms N] [--tokens N] [--threads N]";

fn parse_args() -> Result<(SocketAddr, UpstreamOptions, usize), String> {
    let mut listen = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut options = UpstreamOptions::default();
    let mut threads = 1;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let number = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag} {v}: expected a whole number"))
        };
        match flag.as_str() {
            "--listen" => {
                listen = value
                    .parse()
                    .map_err(|_| format!("--listen {value}: expected IP:PORT"))?;
            }
            "--latency-ms" => options.latency_ms = number(&value)?,
            "--chunk-delay-ms" => options.stream_chunk_delay_ms = number(&value)?,
            "--tokens" => options.completion_tokens = number(&value)?,
            "--threads" => threads = usize::try_from(number(&value)?.max(1)).unwrap_or(1),
            _ => return Err(format!("unknown option {flag}\n{USAGE}")),
        }
    }
    Ok((listen, options, threads))
}

async fn serve(listen: SocketAddr, options: UpstreamOptions) -> Result<(), String> {
    let upstream = FakeUpstream::bind(listen, options)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    println!("listening on {}", upstream.url());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("cannot watch SIGTERM: {e}"))?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    let calls = upstream.calls();
    upstream.shutdown().await;
    println!("served {calls} calls");
    Ok(())
}

fn main() -> ExitCode {
    let (listen, options, threads) = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build();
    let result = match runtime {
        Ok(r) => r.block_on(serve(listen, options)),
        Err(e) => Err(format!("cannot start the runtime: {e}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fake_upstream: {e}");
            ExitCode::FAILURE
        }
    }
}
