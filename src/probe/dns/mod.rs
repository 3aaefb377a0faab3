//! `type = "dns"`: one query through hickory-resolver, without cache,
//! hosts file or retries, so each run asks the server. The response code and
//! the answers are judged against `expect`.

use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::ProtoErrorKind;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::{ResolveErrorKind, TokioResolver};
use tokio::time::{Instant, timeout_at};

use super::{BoxFuture, Category, Outcome, Probe};

mod config;
pub use config::{DnsConfig, DnsExpectSection, DnsProtocol, DnsSpec};

/// Asks a resolver one question.
pub struct DnsProbe {
    spec: DnsSpec,
    resolver: Result<TokioResolver, String>,
}

impl DnsProbe {
    /// A probe for `spec`; the resolver (and the system's config, when no
    /// server is given) is set up here, once.
    pub fn new(spec: DnsSpec) -> Self {
        Self {
            resolver: resolver(&spec),
            spec,
        }
    }

    async fn run(&self, deadline: Instant) -> Outcome {
        let resolver = match &self.resolver {
            Ok(resolver) => resolver,
            Err(e) => return Outcome::fail(Category::Dns, e.clone()),
        };
        let (name, rtype) = (self.spec.name.as_str(), self.spec.record_type);
        let asked = format!("{name} {rtype}");
        let answer = match timeout_at(deadline, resolver.lookup(name, rtype)).await {
            Err(_) => {
                return Outcome::fail(
                    Category::Timeout,
                    format!("no answer to {asked} within the timeout"),
                );
            }
            Ok(answer) => answer,
        };
        let (rcode, answers) = match answer {
            Ok(lookup) => (
                ResponseCode::NoError,
                lookup
                    .records()
                    .iter()
                    .filter(|r| r.record_type() == rtype)
                    .map(|r| r.data().to_string())
                    .collect::<Vec<_>>(),
            ),
            Err(e) => match e.kind() {
                ResolveErrorKind::Proto(p) => match p.kind() {
                    ProtoErrorKind::NoRecordsFound { response_code, .. } => {
                        (*response_code, Vec::new())
                    }
                    ProtoErrorKind::Timeout => {
                        return Outcome::fail(
                            Category::Timeout,
                            format!("no answer to {asked} within the timeout"),
                        );
                    }
                    _ => return Outcome::fail(Category::Protocol, format!("{asked}: {e}")),
                },
                _ => return Outcome::fail(Category::Protocol, format!("{asked}: {e}")),
            },
        };
        judge(&self.spec, &asked, rcode, &answers)
    }
}

fn resolver(spec: &DnsSpec) -> Result<TokioResolver, String> {
    let config = match spec.server {
        Some(addr) => {
            let mut config = ResolverConfig::new();
            let protocol = if spec.tcp {
                Protocol::Tcp
            } else {
                Protocol::Udp
            };
            config.add_name_server(NameServerConfig::new(addr, protocol));
            config
        }
        None => {
            let (system, _) = hickory_resolver::system_conf::read_system_conf()
                .map_err(|e| format!("reading /etc/resolv.conf: {e}"))?;
            // The system's first server only, over the configured protocol.
            let protocol = if spec.tcp {
                Protocol::Tcp
            } else {
                Protocol::Udp
            };
            let first = system
                .name_servers()
                .iter()
                .find(|ns| ns.protocol == protocol)
                .ok_or("/etc/resolv.conf names no nameserver")?;
            ResolverConfig::from_parts(
                system.domain().cloned(),
                system.search().to_vec(),
                vec![first.clone()],
            )
        }
    };
    let mut options = ResolverOpts::default();
    options.cache_size = 0;
    options.attempts = 0;
    // The run's deadline bounds the query; this only has to be longer.
    options.timeout = std::time::Duration::from_secs(60);
    options.use_hosts_file = ResolveHosts::Never;
    options.num_concurrent_reqs = 1;
    options.preserve_intermediates = true;
    Ok(
        TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
            .with_options(options)
            .build(),
    )
}

/// The verdict on an answer with `rcode` and `answers` (zone-file text).
fn judge(spec: &DnsSpec, asked: &str, rcode: ResponseCode, answers: &[String]) -> Outcome {
    if rcode != spec.rcode {
        return Outcome::fail(
            Category::DnsRcode,
            format!("{asked}: {rcode}, expected {}", spec.rcode),
        );
    }
    let shown = || {
        let mut list = answers
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if answers.len() > 5 {
            list.push_str(&format!(" and {} more", answers.len() - 5));
        }
        list
    };
    if (answers.len() as u64) < u64::from(spec.min_answers) {
        return Outcome::fail(
            Category::DnsAnswerMismatch,
            format!(
                "{asked}: {} answer(s), expected at least {}",
                answers.len(),
                spec.min_answers
            ),
        );
    }
    if let Some(missing) = spec
        .answers_contain
        .iter()
        .find(|want| !answers.contains(want))
    {
        return Outcome::fail(
            Category::DnsAnswerMismatch,
            format!("{asked}: {missing:?} not among the answers [{}]", shown()),
        );
    }
    if let Some(re) = &spec.answer_regex
        && !answers.iter().any(|a| re.is_match(a))
    {
        return Outcome::fail(
            Category::DnsAnswerMismatch,
            format!("{asked}: no answer matches /{re}/ [{}]", shown()),
        );
    }
    if answers.is_empty() {
        Outcome::pass(format!("{asked}: {rcode}"))
    } else {
        Outcome::pass(format!("{asked}: {}", shown()))
    }
}

impl Probe for DnsProbe {
    fn check(&self, deadline: Instant) -> BoxFuture<'_, Outcome> {
        Box::pin(self.run(deadline))
    }
}
