//! The `weir` command line: `run`, `validate`, `explain`, `migrate`, `demo`, `crds`.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tokio::net::TcpListener;

use weir::admin::{self, AdminState, Surface};
use weir::compile::{CompileConfig, DefaultBackend};
use weir::proxy::{
    AccessLogConfig, AccessLogFormat, AccessLogTarget, BoundListener, Cidr, EscapedSlashes,
    ForwardedHeaders, Proxy, ProxyConfig,
};
use weir::reconcile::metrics::ControlPlaneMetrics;
use weir::reconcile::{self, ReconcileConfig};
use weir::snapshot::ListenerProtocol;

/// weir: a Kubernetes ingress controller that balances every request.
#[derive(Parser)]
#[command(name = "weir", version, about)]
struct Cli {
    /// Log filter (tracing-subscriber EnvFilter syntax).
    #[arg(long, global = true, env = "WEIR_LOG", default_value = "info")]
    log: String,
    /// Log as JSON lines.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve traffic: from a manifests directory (`--manifests`) or the Kubernetes API.
    Run(Box<RunArgs>),
    /// Compile a manifests directory and print the result (exit 0 ok, 1 rejected, 2
    /// unreadable, 64 usage).
    #[command(after_help = weir::validate::EXIT_STATUS_HELP)]
    Validate(Box<weir::validate::ValidateArgs>),
    /// Report what becomes of every ingress-nginx annotation (exit 0 when all translate, 1
    /// otherwise), or write weir-native manifests that leave them behind.
    Migrate(Box<weir::migrate::MigrateArgs>),
    /// Start demo backends and serve the embedded example manifests through the proxy, on
    /// loopback only (addresses of all interfaces become 127.0.0.1).
    Demo(Box<DemoArgs>),
    /// Print weir's CustomResourceDefinitions (YAML), or write them into directories.
    Crds(CrdsArgs),
    /// Explain one request: the listener, virtual host, route chosen and why the others
    /// lost, each filter's effect, the backend split, the clusters and their endpoints.
    Explain(Box<weir::explain::ExplainArgs>),
}

#[derive(Args)]
struct CrdsArgs {
    /// Write one file per CRD into each of these directories instead of printing
    /// (the repository's `crds/` and the chart's `helm/weir/crds/`).
    #[arg(long, num_args = 1..)]
    write: Vec<std::path::PathBuf>,
}

#[derive(Args, Clone)]
struct ListenArgs {
    /// Plain HTTP listener (HTTP/1.1 and h2c on one port).
    #[arg(long, default_value = "0.0.0.0:8080")]
    http_addr: SocketAddr,
    /// HTTPS listener (TLS 1.2/1.3, ALPN h2 and http/1.1).
    #[arg(long, default_value = "0.0.0.0:8443")]
    https_addr: SocketAddr,
    /// Admin listener: /healthz /readyz /metrics, for the kubelet's probes and Prometheus.
    /// Unauthenticated; reveals no configuration.
    #[arg(long, default_value = "0.0.0.0:9901")]
    admin_addr: SocketAddr,
    /// Debug listener: /config /clusters (configuration dumps, unauthenticated). Loopback by
    /// default, reached with `kubectl port-forward`; `off` disables it.
    #[arg(long, default_value = "127.0.0.1:9902", value_parser = parse_debug_addr)]
    debug_addr: DebugAddr,
    /// Proxy worker threads; 1 runs everything on one thread. Default: number of CPUs.
    #[arg(long)]
    workers: Option<usize>,
    /// Access log: `off`, `stdout` or a file path.
    #[arg(long, default_value = "off")]
    access_log: String,
    /// Access log as JSON lines instead of text.
    #[arg(long)]
    access_log_json: bool,
    /// Export per-route request counters and latency histograms for every route
    /// (`weir_route_requests_total{route,cluster,code_class}`), not only for the routes of
    /// objects annotated `weir.dev/metrics-per-route: "true"`. Series grow with the routes
    /// that see traffic; by default they are kept per cluster and listener.
    #[arg(long)]
    metrics_per_route: bool,
    /// Networks of the load balancers or proxies in front of weir (`CIDR[,CIDR...]`,
    /// repeatable; a bare IP is one address). From a peer in them, X-Forwarded-For is appended
    /// to, X-Forwarded-Proto/-Host and Forwarded are kept, and X-Real-IP is the first
    /// untrusted address of the chain; from any other peer they are all dropped and
    /// rewritten. Default: none (weir is the edge).
    #[arg(long, value_name = "CIDR", value_delimiter = ',', value_parser = parse_cidr)]
    trusted_proxies: Vec<Cidr>,
    /// Deprecated: the same as `--trusted-proxies 0.0.0.0/0,::/0` (trusts every peer).
    #[arg(long)]
    trust_forwarded_headers: bool,
    /// How long in-flight requests may take to finish after SIGTERM/SIGINT.
    #[arg(long, default_value = "25s", value_parser = parse_duration)]
    drain_timeout: Duration,
    /// Request paths with `%2F` or `%5C` (encoded `/` and `\`): `reject` with 400, `keep`
    /// them encoded, or `unescape` them to `/` before normalizing.
    #[arg(long, default_value = "reject", value_parser = parse_escaped_slashes)]
    escaped_slashes: EscapedSlashes,
    /// Close a WebSocket tunnel in which no byte moved for this long (0: never).
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    tunnel_idle_timeout: Duration,
    /// Close a downstream HTTP/2 connection with no open stream for this long, with GOAWAY
    /// (0: never).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    h2_idle_timeout: Duration,
    /// PING a downstream HTTP/2 connection this often while nothing is read from it, to find
    /// peers that went away without closing (0: never).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    h2_keepalive_interval: Duration,
    /// Close a downstream HTTP/2 connection whose keepalive PING got no ACK within this long.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    h2_keepalive_timeout: Duration,
    /// Close a client connection that takes longer than this to send a request head, without
    /// an answer (0: never). Also the idle timeout of HTTP/1 keep-alive connections.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    header_read_timeout: Duration,
    /// Most connections per listener that have not sent a complete first request head yet;
    /// past it each new connection closes the oldest of them (0: no limit).
    #[arg(long, default_value_t = 1024)]
    max_half_received: usize,
    /// Ceiling on any forwarded request's whole duration, from its arrival to the end of its
    /// response body (0: none): 504 before the response headers, the body cut after.
    #[arg(long, default_value = "0", value_parser = parse_duration)]
    max_request_duration: Duration,
}

/// `--debug-addr`: an address, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DebugAddr {
    Off,
    At(SocketAddr),
}

impl std::fmt::Display for DebugAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DebugAddr::Off => f.write_str("off"),
            DebugAddr::At(addr) => write!(f, "{addr}"),
        }
    }
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    listen: ListenArgs,
    /// Serve a directory of Kubernetes manifests, following its changes, instead of the API.
    #[arg(long)]
    manifests: Option<PathBuf>,
    /// IngressClass `spec.controller` value that selects weir's classes.
    #[arg(long, default_value = weir::api::values::DEFAULT_CONTROLLER_NAME)]
    controller_name: String,
    /// Controller-wide default backend `NAMESPACE/SERVICE:PORT` (port by number or name).
    #[arg(long, value_parser = weir::validate::parse_default_backend)]
    default_backend: Option<DefaultBackend>,
    /// Also serve the Ingresses of this IngressClass name (by `spec.ingressClassName` or the
    /// legacy `kubernetes.io/ingress.class` annotation), whatever its controller: e.g.
    /// `nginx`, to take over from ingress-nginx without editing an Ingress. Repeatable.
    #[arg(long = "ingress-class", value_name = "NAME")]
    ingress_classes: Vec<String>,
    /// Prefix of the ingress-nginx annotations weir serves (ingress-nginx's own
    /// `--annotations-prefix`).
    #[arg(long, default_value = weir::compile::nginx::DEFAULT_PREFIX)]
    annotations_prefix: String,
    #[command(flatten)]
    gateway: weir::compile::gateway::GatewayArgs,
    /// Quiet period before a configuration change is compiled.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    debounce_quiet: Duration,
    /// Longest a stream of changes can delay a compile.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    debounce_max: Duration,
    /// The zone weir runs in (the node's `topology.kubernetes.io/zone`; the chart passes it
    /// from the downward API): endpoints hinted for this zone, or in it under Service
    /// `trafficDistribution: PreferClose`, are preferred while any of them is usable.
    #[arg(long, env = "WEIR_ZONE")]
    zone: Option<String>,
    #[command(flatten)]
    kube: KubeArgs,
}

/// Kubernetes-mode flags (unused with `--manifests`).
#[derive(Args, Default)]
struct KubeArgs {
    /// kubeconfig file (default: in-cluster config, then $KUBECONFIG, then ~/.kube/config).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Watch only this namespace (IngressClasses are cluster-scoped and always watched).
    #[arg(long)]
    watch_namespace: Option<String>,
    /// Service `NAMESPACE/NAME` whose load-balancer addresses go into Ingress status.
    #[arg(long)]
    publish_service: Option<String>,
    /// Address (IP or hostname) to write into Ingress status; repeatable.
    #[arg(long)]
    publish_address: Vec<String>,
    /// Namespace of the leader-election Lease (default: $POD_NAMESPACE, else `default`).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "weir-leader")]
    lease_name: String,
    /// This replica's identity in the Lease (default: $POD_NAME, else the hostname).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
}

#[derive(Args)]
struct DemoArgs {
    #[command(flatten)]
    listen: ListenArgs,
    /// Serve this directory instead of the embedded example manifests.
    #[arg(long)]
    manifests: Option<PathBuf>,
}

/// jemalloc, with background threads that return freed pages to the system (10 s decay).
/// Each compile builds a new snapshot beside the serving one and then drops the old; glibc's
/// malloc kept those transient peaks resident. At 5,000 Ingresses in Kubernetes mode, RSS after
/// 20 Ingress changes was 223 MB with glibc and 156 MB with jemalloc (docs/memory.md). The
/// static image would otherwise run on musl's malloc.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with 0; a wrong command line gets its own status,
            // apart from 2 (input that cannot be read).
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(weir::validate::EXIT_USAGE as u8)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    init_tracing(&cli.log, cli.log_json);
    let result = match cli.command {
        Command::Crds(args) => {
            if args.write.is_empty() {
                print!("{}", weir::api::crds::stream());
            }
            for dir in &args.write {
                if let Err(e) = weir::api::crds::write(dir) {
                    eprintln!("weir crds: writing {}: {e}", dir.display());
                    return ExitCode::from(2);
                }
            }
            return ExitCode::SUCCESS;
        }
        Command::Validate(args) => {
            return ExitCode::from(u8::try_from(weir::validate::run(&args)).unwrap_or(1));
        }
        Command::Explain(args) => {
            return ExitCode::from(u8::try_from(weir::explain::run(&args)).unwrap_or(1));
        }
        Command::Migrate(args) => {
            return ExitCode::from(u8::try_from(migrate(&args)).unwrap_or(1));
        }
        Command::Run(args) => {
            let workers = args.listen.workers;
            block_on(workers, run(*args))
        }
        Command::Demo(args) => {
            let workers = args.listen.workers;
            block_on(workers, demo(*args))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("weir: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(filter: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn block_on(
    workers: Option<usize>,
    fut: impl Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let runtime = match workers {
        Some(1) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n.max(1))
            .enable_all()
            .build(),
        None => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    }
    .context("starting the tokio runtime")?;
    runtime.block_on(fut)
}

/// Resolves on the first SIGTERM or SIGINT.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("shutdown signal received: draining");
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let compile = CompileConfig {
        controller_name: args.controller_name.clone(),
        http_addr: args.listen.http_addr,
        https_addr: Some(args.listen.https_addr),
        default_backend: args.default_backend.clone(),
        now_unix: 0,
        ingress_classes: args.ingress_classes.clone(),
        annotations_prefix: args.annotations_prefix.clone(),
        gateway: args.gateway.config(),
    };
    let mut cfg = ReconcileConfig::new(compile);
    cfg.quiet = args.debounce_quiet;
    cfg.max_delay = args.debounce_max;
    cfg.zone = args.zone.clone().filter(|z| !z.is_empty());
    match args.manifests {
        Some(dir) => {
            serve(
                &args.listen,
                cfg.metrics.clone(),
                |proxy, shutdown| async move {
                    reconcile::run_files(dir, cfg, proxy, shutdown)
                        .await
                        .context("manifests source")
                },
            )
            .await
        }
        None => {
            let client = kube_client(args.kube.kubeconfig.as_deref()).await?;
            let opts = kube_options(&args.kube, &args.controller_name)?;
            serve(
                &args.listen,
                cfg.metrics.clone(),
                |proxy, shutdown| async move {
                    reconcile::run_kube(client, opts, cfg, proxy, shutdown)
                        .await
                        .context("Kubernetes source")
                },
            )
            .await
        }
    }
}

/// `weir migrate`, from a manifests directory or a cluster.
fn migrate(args: &weir::migrate::MigrateArgs) -> i32 {
    use weir::migrate;
    if let Some(dir) = &args.manifests {
        return migrate::run_manifests(args, dir);
    }
    let wanted = match migrate::parse_config_map(&args.nginx_configmap) {
        Ok(key) => key,
        Err(e) => {
            eprintln!("error: --nginx-configmap {e}");
            return migrate::EXIT_UNREADABLE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return migrate::EXIT_UNREADABLE;
        }
    };
    runtime.block_on(async {
        let client = match kube_client(args.kubeconfig.as_deref()).await {
            Ok(client) => client,
            Err(e) => {
                eprintln!("error: {e:#}");
                return migrate::EXIT_UNREADABLE;
            }
        };
        let (objects, data) =
            migrate::load_cluster(&client, args.namespace.as_deref(), &wanted).await;
        migrate::print(args, &objects, data.as_ref().map(|d| (&wanted, d)))
    })
}

async fn kube_client(kubeconfig: Option<&std::path::Path>) -> anyhow::Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .context("loading kubeconfig")?
        }
        None => kube::Config::infer()
            .await
            .context("no in-cluster config and no usable kubeconfig")?,
    };
    kube::Client::try_from(config).context("building the Kubernetes client")
}

fn kube_options(args: &KubeArgs, controller_name: &str) -> anyhow::Result<reconcile::KubeOptions> {
    let publish_service = args
        .publish_service
        .as_deref()
        .map(|s| {
            s.split_once('/')
                .map(|(ns, name)| weir::store::ObjectKey::new(ns, name))
                .with_context(|| format!("--publish-service {s:?}: expected NAMESPACE/NAME"))
        })
        .transpose()?;
    let identity = match &args.identity {
        Some(identity) => identity.clone(),
        None => hostname(),
    };
    Ok(reconcile::KubeOptions {
        watch_namespace: args.watch_namespace.clone(),
        publish_service,
        publish_addresses: args.publish_address.clone(),
        lease: weir::lease::LeaseOptions::new(
            args.lease_namespace.clone(),
            args.lease_name.clone(),
            identity,
        ),
        event_controller: controller_name.to_string(),
    })
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("weir-{}", std::process::id()))
}

/// Bind the listeners, start the proxy and the admin listener, run the control plane
/// `source` until a signal, then drain.
async fn serve<F, Fut>(
    listen: &ListenArgs,
    control_metrics: ControlPlaneMetrics,
    source: F,
) -> anyhow::Result<()>
where
    F: FnOnce(Proxy, std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let bind = |addr: SocketAddr, what: &'static str| async move {
        TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the {what} listener on {addr}"))
    };
    let http = bind(listen.http_addr, "HTTP").await?;
    let https = bind(listen.https_addr, "HTTPS").await?;
    let admin_listener = bind(listen.admin_addr, "admin").await?;
    let debug_listener = match listen.debug_addr {
        DebugAddr::Off => None,
        DebugAddr::At(addr) => {
            if !addr.ip().is_loopback() {
                tracing::warn!(
                    debug = %addr,
                    "the debug listener dumps the configuration unauthenticated on a non-loopback address"
                );
            }
            Some(bind(addr, "debug").await?)
        }
    };
    tracing::info!(
        http = %listen.http_addr, https = %listen.https_addr, admin = %listen.admin_addr,
        debug = %listen.debug_addr, "listening"
    );

    let proxy = Proxy::new(proxy_config(listen)?);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };

    let control = tokio::spawn(source(proxy.clone(), Box::pin(stopped())));
    let admin_state = AdminState {
        proxy: proxy.clone(),
        metrics: vec![Arc::new(move |out: &mut String| {
            control_metrics.render_metrics(out)
        })],
    };
    let debug = debug_listener.map(|listener| {
        tokio::spawn(admin::serve(
            listener,
            admin_state.clone(),
            Surface::Debug,
            stopped(),
        ))
    });
    let admin = tokio::spawn(admin::serve(
        admin_listener,
        admin_state,
        Surface::Admin,
        stopped(),
    ));
    let data = {
        let proxy = proxy.clone();
        let stop = stopped();
        tokio::spawn(async move {
            // The listeners compile puts in every snapshot (same names and addresses), bound
            // here so a port in use fails the start with a clear message.
            let prebound = vec![
                BoundListener {
                    name: "http".to_owned(),
                    protocol: ListenerProtocol::Http,
                    socket: http,
                },
                BoundListener {
                    name: "https".to_owned(),
                    protocol: ListenerProtocol::Https,
                    socket: https,
                },
            ];
            proxy.serve(prebound, stop).await
        })
    };

    tokio::select! {
        _ = shutdown_signal() => {}
        result = control => {
            // The control plane only returns on a fatal error: stop serving.
            let _ = stop_tx.send(true);
            let _ = data.await;
            return match result {
                Ok(Ok(())) => Ok(()),
                Ok(Err(error)) => Err(error),
                Err(join) => Err(anyhow::anyhow!("control plane task failed: {join}")),
            };
        }
    }
    let _ = stop_tx.send(true);
    let served = data.await.context("proxy task")?;
    let _ = admin.await;
    if let Some(debug) = debug {
        let _ = debug.await;
    }
    served.context("proxy")?;
    tracing::info!("drained; bye");
    Ok(())
}

fn proxy_config(listen: &ListenArgs) -> anyhow::Result<ProxyConfig> {
    let target = match listen.access_log.as_str() {
        "off" => AccessLogTarget::Off,
        "stdout" | "-" => AccessLogTarget::Stdout,
        path => AccessLogTarget::File(PathBuf::from(path)),
    };
    let format = if listen.access_log_json {
        AccessLogFormat::Json
    } else {
        AccessLogFormat::Text
    };
    Ok(ProxyConfig {
        drain_timeout: listen.drain_timeout,
        escaped_slashes: listen.escaped_slashes,
        tunnel_idle_timeout: listen.tunnel_idle_timeout,
        h2_idle_timeout: listen.h2_idle_timeout,
        h2_keepalive_interval: Some(listen.h2_keepalive_interval).filter(|d| !d.is_zero()),
        h2_keepalive_timeout: listen.h2_keepalive_timeout,
        header_read_timeout: listen.header_read_timeout,
        max_half_received: listen.max_half_received,
        max_request_duration: listen.max_request_duration,
        access_log: AccessLogConfig { target, format },
        metrics_per_route: listen.metrics_per_route,
        forwarded: forwarded_headers(listen),
        ..ProxyConfig::default()
    })
}

fn forwarded_headers(listen: &ListenArgs) -> ForwardedHeaders {
    let mut forwarded = ForwardedHeaders {
        trusted_proxies: listen.trusted_proxies.clone(),
    };
    if listen.trust_forwarded_headers {
        tracing::warn!(
            "--trust-forwarded-headers is deprecated: it trusts every peer; name the load \
             balancers' networks with --trusted-proxies"
        );
        forwarded
            .trusted_proxies
            .extend(ForwardedHeaders::trust_all().trusted_proxies);
    }
    if !forwarded.trusted_proxies.is_empty() {
        let nets: Vec<String> = forwarded
            .trusted_proxies
            .iter()
            .map(ToString::to_string)
            .collect();
        tracing::info!(trusted_proxies = %nets.join(","), "forwarding headers trusted from these peers");
    }
    forwarded
}

async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    weir::demo::start_backends()
        .await
        .context("starting the demo backends on 127.0.0.1:18101-18104")?;
    let (dir, _keep) = match args.manifests {
        Some(dir) => (dir, None),
        None => {
            let tmp = tempfile::tempdir().context("creating a temporary directory")?;
            weir::demo::write_manifests(tmp.path()).context("writing the demo manifests")?;
            (tmp.path().to_path_buf(), Some(tmp))
        }
    };
    // The demo binds loopback only: every listener asked to bind all interfaces (the
    // defaults of `weir run`) binds 127.0.0.1 instead, the unauthenticated admin port too.
    let loopback = |mut addr: SocketAddr| {
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        addr
    };
    let mut listen = args.listen;
    listen.http_addr = loopback(listen.http_addr);
    listen.https_addr = loopback(listen.https_addr);
    listen.admin_addr = loopback(listen.admin_addr);
    if let DebugAddr::At(addr) = listen.debug_addr {
        listen.debug_addr = DebugAddr::At(loopback(addr));
    }
    let (http, https, admin) = (listen.http_addr, listen.https_addr, listen.admin_addr);
    let debug = match listen.debug_addr {
        DebugAddr::At(addr) => format!("http://{addr}"),
        DebugAddr::Off => "(--debug-addr off)".to_owned(),
    };
    println!(
        "weir demo: serving {} on http://{http} and https://{https} (admin http://{admin})\n\
         try:\n  \
         curl -H 'Host: demo.localhost' http://{http}/a        # echo-a-1 / echo-a-2 in turn\n  \
         curl -H 'Host: demo.localhost' http://{http}/b        # echo-b-1 / echo-b-2\n  \
         curl --http2-prior-knowledge http://{http}/           # no-host rule, over h2c\n  \
         curl -k --resolve demo.localhost:{https_port}:127.0.0.1 https://demo.localhost:{https_port}/a\n  \
         curl {debug}/clusters                        # endpoints with request counts\n  \
         curl http://{admin}/metrics\n\
         Ctrl-C to stop.",
        dir.display(),
        https_port = https.port(),
    );
    run(RunArgs {
        listen,
        manifests: Some(dir),
        controller_name: weir::api::values::DEFAULT_CONTROLLER_NAME.to_string(),
        default_backend: None,
        ingress_classes: Vec::new(),
        annotations_prefix: weir::compile::nginx::DEFAULT_PREFIX.to_owned(),
        gateway: weir::compile::gateway::GatewayArgs {
            gateway_bind_address: std::net::IpAddr::from([127, 0, 0, 1]),
            ..Default::default()
        },
        debounce_quiet: Duration::from_millis(100),
        debounce_max: Duration::from_secs(1),
        zone: None,
        kube: KubeArgs::default(),
    })
    .await
}

/// Parse one CIDR of `--trusted-proxies` (the list is split on commas by clap).
fn parse_cidr(s: &str) -> Result<Cidr, String> {
    s.parse::<Cidr>().map_err(|e| e.to_string())
}

/// Parse `--debug-addr`: `off`, or an address.
fn parse_debug_addr(s: &str) -> Result<DebugAddr, String> {
    if s == "off" {
        return Ok(DebugAddr::Off);
    }
    s.parse()
        .map(DebugAddr::At)
        .map_err(|_| format!("{s:?}: expected an address like 127.0.0.1:9902, or off"))
}

/// Parse `reject`, `keep` or `unescape`.
fn parse_escaped_slashes(s: &str) -> Result<EscapedSlashes, String> {
    match s {
        "reject" => Ok(EscapedSlashes::Reject),
        "keep" => Ok(EscapedSlashes::KeepUnchanged),
        "unescape" => Ok(EscapedSlashes::UnescapeAndForward),
        _ => Err(format!("{s:?}: expected reject, keep or unescape")),
    }
}

/// Parse `250ms`, `5s`, `2m` or a bare number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = number
        .parse()
        .map_err(|_| format!("{s:?}: not a duration"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?}: unit must be ms, s, m or h")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("{s:?}: not a duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}
