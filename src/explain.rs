//! `weir explain`: the command line of [`crate::proxy::explain`]. It explains one request
//! against a manifests directory (compiled as `weir validate` compiles it; endpoints from its
//! EndpointSlices) or against a running weir (`--admin`: its debug listener's `/explain`, with
//! each endpoint's health and load).
//!
//! ```text
//! weir explain --manifests DIR GET 'https://shop.example.com/api/v1?x=1' -H 'X-User: a' --client-ip 10.1.2.3
//! weir explain --admin http://127.0.0.1:9902 'https://shop.example.com/api/v1'
//! ```
//!
//! Exit status: 0 explained (whatever the outcome), 2 the manifests or the admin listener
//! cannot be read, 64 a bad request or command line.

use std::path::PathBuf;

use crate::endpoints;
use crate::proxy::EscapedSlashes;
use crate::proxy::explain::{self, Endpoints, ExplainRequest};
use crate::store::files;
use crate::validate::{CompileArgs, EXIT_OK, EXIT_UNREADABLE, EXIT_USAGE, compile_config};

/// Arguments of `weir explain`.
#[derive(Debug, Clone, clap::Args)]
#[command(group = clap::ArgGroup::new("source").required(true).args(["manifests", "admin"]))]
pub struct ExplainArgs {
    /// Explain against this manifests directory (or file).
    #[arg(long, value_name = "DIR")]
    pub manifests: Option<PathBuf>,
    /// Explain against a running weir: its debug listener (`http://127.0.0.1:9902`; in a pod,
    /// after `kubectl port-forward POD 9902`).
    #[arg(long, value_name = "URL")]
    pub admin: Option<String>,
    /// `[METHOD] URL`: the method (GET when left out) and an absolute `http://` or `https://`
    /// URL; its scheme and port pick the listener.
    #[arg(value_name = "REQUEST", num_args = 1..=2, required = true)]
    pub request: Vec<String>,
    /// A request header, `Name: value` (repeatable).
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    pub headers: Vec<String>,
    /// The client's address, for address-based filters (IPAccess).
    #[arg(long, value_name = "IP")]
    pub client_ip: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// How the manifests are compiled (with `--manifests`).
    #[command(flatten)]
    pub compile: CompileArgs,
}

/// Output format of `weir explain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Text for people.
    Text,
    /// JSON (what `/explain` serves).
    Json,
}

impl ExplainArgs {
    fn method_and_url(&self) -> (&str, &str) {
        match self.request.as_slice() {
            [method, url] => (method, url),
            [url] => ("GET", url),
            _ => ("GET", ""),
        }
    }
}

/// Runs `weir explain`; returns the exit status.
pub fn run(args: &ExplainArgs) -> i32 {
    let (method, url) = args.method_and_url();
    let req = match ExplainRequest::parse(method, url, &args.headers, args.client_ip.as_deref()) {
        Ok(req) => req,
        Err(e) => {
            eprintln!("weir explain: {e}");
            return EXIT_USAGE;
        }
    };
    if let Some(admin) = &args.admin {
        return remote(admin, args, method, url);
    }
    let Some(dir) = &args.manifests else {
        return EXIT_USAGE;
    };
    let (objects, _) = match files::load_dir(dir) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("weir explain: {e}");
            return EXIT_UNREADABLE;
        }
    };
    let now = crate::validate::now_unix();
    let compiled = crate::compile::compile(&objects, &compile_config(&args.compile, now));
    let sets = endpoints::build(&objects, &compiled.snapshot.clusters, None);
    let e = explain::explain(
        &compiled.snapshot,
        Endpoints::Sets(&sets),
        EscapedSlashes::Reject,
        &req,
    );
    print(&e, args.output);
    EXIT_OK
}

fn print(e: &explain::Explanation, output: Output) {
    match output {
        Output::Text => print!("{e}"),
        Output::Json => match serde_json::to_string_pretty(e) {
            Ok(s) => println!("{s}"),
            Err(err) => eprintln!("weir explain: {err}"),
        },
    }
}

/// Asks a running weir's `/explain` and prints its answer.
fn remote(admin: &str, args: &ExplainArgs, method: &str, url: &str) -> i32 {
    let mut query = format!("method={}&url={}", encode(method), encode(url));
    for h in &args.headers {
        query.push_str("&header=");
        query.push_str(&encode(h));
    }
    if let Some(ip) = &args.client_ip {
        query.push_str("&client_ip=");
        query.push_str(&encode(ip));
    }
    let format = match args.output {
        Output::Text => "text",
        Output::Json => "json",
    };
    let target = format!(
        "{}/explain?{query}&format={format}",
        admin.trim_end_matches('/')
    );
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("weir explain: {e}");
            return EXIT_UNREADABLE;
        }
    };
    let answer = runtime.block_on(async {
        use http_body_util::BodyExt;
        let uri: http::Uri = target
            .parse()
            .map_err(|e| format!("--admin {admin:?}: {e}"))?;
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<http_body_util::Empty<bytes::Bytes>>();
        let fetch = async {
            let resp = client.get(uri).await.map_err(|e| e.to_string())?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((status, body.to_bytes()))
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), fetch)
            .await
            .map_err(|_| format!("{admin}: no answer in 10 s"))?
            .map_err(|e| format!("{admin}: {e}"))
    });
    match answer {
        Ok((status, body)) if status.is_success() => {
            print!("{}", String::from_utf8_lossy(&body));
            EXIT_OK
        }
        Ok((status, body)) => {
            eprintln!(
                "weir explain: {admin} answered {status}: {}",
                String::from_utf8_lossy(&body).trim()
            );
            if status == http::StatusCode::BAD_REQUEST {
                EXIT_USAGE
            } else {
                EXIT_UNREADABLE
            }
        }
        Err(e) => {
            eprintln!("weir explain: {e}");
            EXIT_UNREADABLE
        }
    }
}

/// Percent-encodes a query value (everything but the unreserved characters).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::encode;

    #[test]
    fn query_values_round_trip_through_the_router_decoder() {
        let v = "https://shop.example.com/a b?x=1&y=é";
        let encoded = encode(v);
        assert!(!encoded.contains(['&', '?', ' ', '=']), "{encoded}");
        assert_eq!(crate::snapshot::router::decode(&encoded), v);
    }
}
