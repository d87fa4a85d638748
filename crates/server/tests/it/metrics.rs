//! `GET /metrics` parses as Prometheus text and counts what the README says it counts.

use std::collections::{BTreeMap, BTreeSet};

use prometheus_parse::{Sample, Scrape, Value};

use crate::support::*;

async fn scrape(f: &Fixture) -> Scrape {
    let text = scrape_text(f).await;
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

/// The exposition as served.
async fn scrape_text(f: &Fixture) -> String {
    let r = f.http.get(f.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let content_type = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    r.text().await.unwrap()
}

fn find<'a>(scrape: &'a Scrape, name: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .collect()
}

fn total(samples: &[&Sample]) -> f64 {
    samples
        .iter()
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            _ => 0.0,
        })
        .sum()
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_and_count_requests_logins_and_sessions() {
    // The recorder is per process: other tests' servers add to these figures, so every check
    // is "at least what this test did".
    let f = Fixture::start().await;
    let bearer = f.api_token().await;
    let session = f.session(&bearer).await;
    // The same wrong password twice: the second is not counted, and counted as such.
    for _ in 0..2 {
        assert_eq!(
            f.login(&bearer, USERNAME, "wrong password").await.status(),
            400
        );
    }
    let r = f
        .http
        .get(f.url("/auth/verify"))
        .bearer_auth(&bearer)
        .header("VZ-M2M-Token", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);

    let scrape = scrape(&f).await;
    let login_ok = find(
        &scrape,
        "m2m_session_http_requests_total",
        &[
            ("route", "/api/m2m/v1/session/login"),
            ("method", "POST"),
            ("status", "200"),
        ],
    );
    assert!(total(&login_ok) >= 1.0, "{login_ok:?}");
    let verify = find(
        &scrape,
        "m2m_session_http_requests_total",
        &[("route", "/auth/verify"), ("status", "204")],
    );
    assert!(total(&verify) >= 1.0);
    let latency = scrape
        .samples
        .iter()
        .find(|s| s.metric == "m2m_session_http_request_duration_seconds")
        .expect("no latency histogram");
    assert!(matches!(latency.value, Value::Histogram(_)), "{latency:?}");
    assert!(
        total(&find(
            &scrape,
            "m2m_session_login_total",
            &[("result", "success")]
        )) >= 1.0
    );
    assert!(
        total(&find(
            &scrape,
            "m2m_session_login_total",
            &[("result", "invalid_credentials")]
        )) >= 1.0
    );
    assert!(total(&find(&scrape, "m2m_session_active_sessions", &[])) >= 1.0);
    let wait = scrape
        .samples
        .iter()
        .find(|s| s.metric == "m2m_session_argon2_queue_wait_seconds")
        .expect("no argon2 queue wait");
    assert!(matches!(wait.value, Value::Histogram(_)));
    // Present from the start, even at 0.
    assert_eq!(find(&scrape, "m2m_session_lockouts_total", &[]).len(), 1);
    assert_eq!(
        find(&scrape, "m2m_session_store_errors_total", &[]).len(),
        1
    );
    for reason in ["forgiven", "stale_password"] {
        let series = find(
            &scrape,
            "m2m_session_login_failures_uncounted_total",
            &[("reason", reason)],
        );
        assert_eq!(series.len(), 1, "{reason}");
    }
    let repeated = find(
        &scrape,
        "m2m_session_login_failures_uncounted_total",
        &[("reason", "repeated")],
    );
    assert!(total(&repeated) >= 1.0, "{repeated:?}");
    assert!(
        scrape.docs.contains_key("m2m_session_login_total"),
        "{:?}",
        scrape.docs
    );
}

/// Every counter whose labels are known in advance, with them: present at 0 before any traffic
/// (`http_requests_total` appears per route, method and status as they are answered).
const COUNTERS_FROM_THE_START: &[(&str, &str, &[&str])] = &[
    (
        "m2m_session_login_total",
        "result",
        &[
            "success",
            "invalid_credentials",
            "locked",
            "throttled",
            "error",
        ],
    ),
    ("m2m_session_lockouts_total", "", &[]),
    (
        "m2m_session_login_failures_uncounted_total",
        "reason",
        &["repeated", "stale_password", "forgiven"],
    ),
    ("m2m_session_store_errors_total", "", &[]),
    (
        "m2m_session_http_shed_total",
        "reason",
        &["overloaded", "draining", "connection_cap"],
    ),
    ("m2m_session_http_connections_refused_total", "", &[]),
    ("m2m_session_http_connections_evicted_total", "", &[]),
    ("m2m_session_http_accept_errors_total", "", &[]),
    ("m2m_session_http_connections_timed_out_total", "", &[]),
];

#[tokio::test]
async fn every_counter_with_known_labels_is_exported_before_any_traffic() {
    let f = Fixture::start().await;
    // The first request of this server: nothing has been counted by it yet.
    let text = scrape_text(&f).await;
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    for (name, label, values) in COUNTERS_FROM_THE_START {
        assert!(
            text.contains(&format!("# TYPE {name} counter")),
            "{name} is not typed as a counter"
        );
        assert!(scrape.docs.contains_key(*name), "{name} has no HELP");
        if values.is_empty() {
            assert_eq!(find(&scrape, name, &[]).len(), 1, "{name} missing");
        }
        for value in *values {
            assert_eq!(
                find(&scrape, name, &[(label, value)]).len(),
                1,
                "{name}{{{label}=\"{value}\"}} missing"
            );
        }
    }
    // Every counter the server declares is in that list, or is the per-route one.
    let declared: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .filter(|name| name.starts_with("m2m_session_"))
        .collect();
    let listed: BTreeSet<&str> = COUNTERS_FROM_THE_START
        .iter()
        .map(|(name, ..)| *name)
        .chain(["m2m_session_http_requests_total"])
        .collect();
    assert!(
        declared.is_subset(&listed),
        "not checked here: {:?}",
        declared.difference(&listed).collect::<Vec<_>>()
    );
    assert_eq!(
        find(&scrape, "m2m_session_http_connections_open", &[]).len(),
        1
    );
}

#[tokio::test]
async fn build_info_and_process_metrics_are_exported() {
    let f = Fixture::start().await;
    let text = scrape_text(&f).await;
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let info = find(&scrape, "m2m_session_build_info", &[]);
    assert_eq!(info.len(), 1, "{info:?}");
    assert_eq!(total(&info), 1.0);
    assert_eq!(
        info[0].labels.get("version"),
        Some(env!("CARGO_PKG_VERSION"))
    );
    let commit = info[0].labels.get("commit").expect("no commit label");
    assert!(
        commit == "unknown" || commit.bytes().all(|b| b.is_ascii_alphanumeric()),
        "{commit}"
    );
    assert!(text.contains("# TYPE m2m_session_build_info gauge"));
    assert!(text.contains("# TYPE process_cpu_seconds_total counter"));
    for gauge in [
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
    ] {
        assert!(
            text.contains(&format!("# TYPE {gauge} gauge")),
            "{gauge} missing"
        );
        assert!(total(&find(&scrape, gauge, &[])) > 0.0, "{gauge} is 0");
    }
    // The start time is a Unix time: after 2020, not in the future.
    let started = total(&find(&scrape, "process_start_time_seconds", &[]));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (1_577_836_800.0..=now + 1.0).contains(&started),
        "{started}"
    );
}

/// What a scrape declares: each family's type and help, and every sample's name.
struct Exposition {
    types: BTreeMap<String, String>,
    helps: BTreeSet<String>,
    samples: BTreeMap<String, BTreeSet<String>>,
}

impl Exposition {
    fn parse(text: &str) -> Self {
        let mut types = BTreeMap::new();
        let mut helps = BTreeSet::new();
        let mut samples: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                types.insert(name.to_owned(), kind.to_owned());
            } else if let Some(rest) = line.strip_prefix("# HELP ") {
                helps.insert(rest.split_once(' ').unwrap().0.to_owned());
            } else if !line.starts_with('#') {
                let end = line.find(['{', ' ']).unwrap();
                let labels = match line[end..].strip_prefix('{') {
                    Some(rest) => label_names(&rest[..rest.rfind('}').unwrap()]),
                    None => BTreeSet::new(),
                };
                samples
                    .entry(line[..end].to_owned())
                    .or_default()
                    .extend(labels);
            }
        }
        Self {
            types,
            helps,
            samples,
        }
    }

    /// The family a sample belongs to (`x_bucket` of the histogram `x` is `x`).
    fn family(&self, sample: &str) -> Option<&str> {
        if self.types.contains_key(sample) {
            return Some(self.types.get_key_value(sample).unwrap().0);
        }
        ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
            let base = sample.strip_suffix(suffix)?;
            let (name, kind) = self.types.get_key_value(base)?;
            matches!(kind.as_str(), "histogram" | "summary").then_some(name.as_str())
        })
    }
}

/// The names in `a="x",b="y\"z"`.
fn label_names(labels: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = labels;
    while let Some((name, after)) = rest.split_once("=\"") {
        names.insert(name.trim_start_matches(',').trim().to_owned());
        // Skip the value, escapes included.
        let mut escaped = false;
        let close = after
            .char_indices()
            .find(|&(_, c)| {
                let end = c == '"' && !escaped;
                escaped = c == '\\' && !escaped;
                end
            })
            .unwrap()
            .0;
        rest = &after[close + 1..];
    }
    names
}

/// The conventions of <https://prometheus.io/docs/practices/naming/> this server keeps, and,
/// where `promtool` is installed (Debian's `prometheus` package), `promtool check metrics`.
#[tokio::test]
async fn metric_names_follow_the_prometheus_conventions() {
    let f = Fixture::start().await;
    traffic(&f).await;
    let text = scrape_text(&f).await;
    promtool_check(&text);
    let exposition = Exposition::parse(&text);
    let valid_name = |n: &str| {
        n.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    for (name, kind) in &exposition.types {
        assert!(valid_name(name), "{name}");
        assert!(
            name.starts_with("m2m_session_") || name.starts_with("process_"),
            "{name}: ours are m2m_session_*, the process's process_*"
        );
        assert!(exposition.helps.contains(name), "{name} has no HELP");
        assert_eq!(
            kind == "counter",
            name.ends_with("_total"),
            "{name} ({kind}): _total is for counters, and counters have it"
        );
        assert!(
            ["counter", "gauge", "histogram"].contains(&kind.as_str()),
            "{name}: {kind}"
        );
        if kind == "histogram" {
            assert!(
                name.ends_with("_seconds") || name.ends_with("_bytes"),
                "{name}: a histogram's name ends in its base unit"
            );
        }
        // Base units only: seconds and bytes, not milli- or kilo-anything.
        for bad in [
            "_ms",
            "_millis",
            "_milliseconds",
            "_us",
            "_microseconds",
            "_minutes",
            "_hours",
            "_kb",
            "_kib",
            "_mb",
            "_kilobytes",
            "_megabytes",
            "_percent",
        ] {
            assert!(
                !name.contains(&format!("{bad}_")) && !name.ends_with(bad),
                "{name}: not a base unit ({bad})"
            );
        }
    }
    for (sample, labels) in &exposition.samples {
        let family = exposition
            .family(sample)
            .unwrap_or_else(|| panic!("{sample} has no TYPE"));
        for label in labels {
            assert!(valid_name(label), "{sample}: label {label}");
            assert!(!label.starts_with("__"), "{sample}: label {label}");
        }
        // `le` only on a histogram's buckets, `quantile` on no series of ours.
        if !(sample.ends_with("_bucket") && exposition.types[family] == "histogram") {
            assert!(!labels.contains("le"), "{sample}");
        }
        assert!(!labels.contains("quantile"), "{sample}");
    }
}

/// `promtool check metrics` on `text`, when promtool is on the PATH (CI does not install it).
fn promtool_check(text: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        eprintln!("promtool not found: skipping `promtool check metrics`");
        return;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A little of everything, so that histograms and per-route series exist.
async fn traffic(f: &Fixture) {
    let bearer = f.api_token().await;
    let session = f.session(&bearer).await;
    assert_eq!(
        f.login(&bearer, USERNAME, "wrong password").await.status(),
        400
    );
    let r = f
        .http
        .get(f.url("/auth/verify"))
        .bearer_auth(&bearer)
        .header("VZ-M2M-Token", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    scrape_text(f).await;
}

/// The metric names a PromQL expression reads: identifiers that are not functions (followed
/// by `(`), keywords, label names (inside `{}`, `by (...)` and the like), durations (inside
/// `[]`, after `offset`), strings or numbers. `label_values(m, label)` (a Grafana variable
/// query) reads `m`.
fn promql_metric_names(expr: &str) -> BTreeSet<String> {
    const KEYWORDS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "offset",
        "bool",
        "and",
        "or",
        "unless",
        "inf",
        "nan",
    ];
    const LABEL_LISTS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let skip_to = |from: usize, close: char| {
        let mut j = from;
        while j < chars.len() && chars[j] != close {
            if chars[j] == '"' {
                j += 1;
                while j < chars.len() && chars[j] != '"' {
                    j += usize::from(chars[j] == '\\') + 1;
                }
            }
            j += 1;
        }
        j + 1
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '{' {
            i = skip_to(i + 1, '}');
        } else if c == '[' {
            i = skip_to(i + 1, ']');
        } else if c == '"' || c == '\'' || c == '`' {
            let mut j = i + 1;
            while j < chars.len() && chars[j] != c {
                j += usize::from(chars[j] == '\\') + 1;
            }
            i = j + 1;
        } else if c == '$' || c.is_ascii_digit() || c == '.' {
            // A Grafana variable, a number or a duration.
            i += 1;
            while i < chars.len() && (ident(chars[i]) || chars[i] == '.') {
                i += 1;
            }
        } else if ident(c) {
            let start = i;
            while i < chars.len() && ident(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut next = i;
            while next < chars.len() && chars[next].is_whitespace() {
                next += 1;
            }
            // A function call, or an aggregation with its grouping first: `sum by (le) (...)`.
            let rest: String = chars[next..].iter().take(8).collect();
            let grouped = ["by", "without"].iter().any(|kw| {
                rest.strip_prefix(kw)
                    .is_some_and(|after| after.starts_with([' ', '(']))
            });
            let call = chars.get(next) == Some(&'(') || grouped;
            if LABEL_LISTS.contains(&word.as_str()) && call {
                i = skip_to(next + 1, ')');
            } else if word == "label_values" && call {
                // Only its first argument is a metric; the label after the comma is not.
                let close = skip_to(next + 1, ')');
                let args: String = chars[next + 1..close - 1].iter().collect();
                let metric = args.split(',').next().unwrap_or("");
                names.extend(promql_metric_names(metric));
                i = close;
            } else if word == "offset" {
                while i < chars.len() && !chars[i].is_ascii_alphanumeric() {
                    i += 1;
                }
                while i < chars.len() && ident(chars[i]) {
                    i += 1;
                }
            } else if !call && !KEYWORDS.contains(&word.to_ascii_lowercase().as_str()) {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn promql_metric_names_skips_functions_labels_and_durations() {
    let names = promql_metric_names(
        r#"histogram_quantile(0.99, sum by (le, route) (rate(a_seconds_bucket{job=~"$job", route!="x{y}"}[$__rate_interval])))
           / on (instance) group_left (version) b_info + sum(rate(c_total[5m] offset 1h)) > bool 0.5
           or vector(0) and max without (reason) (d) * 1e3"#,
    );
    let expected: BTreeSet<String> = ["a_seconds_bucket", "b_info", "c_total", "d"]
        .map(str::to_owned)
        .into();
    assert_eq!(names, expected);
    assert_eq!(
        promql_metric_names("label_values(m2m_session_build_info{job=~\"$job\"}, instance)"),
        ["m2m_session_build_info".to_owned()].into()
    );
}

/// Every PromQL string of a Grafana dashboard: each target's `expr` and each query variable's
/// query.
fn dashboard_queries(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::String(expr)) = map.get("expr") {
                out.push(expr.clone());
            }
            if map.get("type").and_then(|t| t.as_str()) == Some("query") {
                match map.get("query") {
                    Some(serde_json::Value::String(q)) => out.push(q.clone()),
                    Some(serde_json::Value::Object(q)) => {
                        if let Some(q) = q.get("query").and_then(|q| q.as_str()) {
                            out.push(q.to_owned());
                        }
                    }
                    _ => {}
                }
            }
            map.values().for_each(|v| dashboard_queries(v, out));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| dashboard_queries(v, out)),
        _ => {}
    }
}

/// `deploy/grafana/m2m-session.json` reads only series this server exports: renaming a metric
/// fails here rather than on a dashboard that quietly shows "No data".
#[tokio::test]
async fn the_grafana_dashboard_reads_only_exported_series() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/grafana/m2m-session.json"
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut queries = Vec::new();
    dashboard_queries(&dashboard, &mut queries);
    assert!(queries.len() >= 10, "{queries:?}");

    let f = Fixture::start().await;
    traffic(&f).await;
    let text = scrape_text(&f).await;
    let exposition = Exposition::parse(&text);
    let mut used = BTreeSet::new();
    for query in &queries {
        let names = promql_metric_names(query);
        assert!(!names.is_empty(), "no metric in {query}");
        for name in names {
            assert!(
                exposition.samples.contains_key(&name),
                "the dashboard reads {name}, which /metrics does not have (in {query})"
            );
            used.insert(exposition.family(&name).unwrap().to_owned());
        }
    }
    // And it shows every series of ours, so that a new one is not forgotten there.
    let unshown: Vec<_> = exposition
        .types
        .keys()
        .filter(|name| name.starts_with("m2m_session_") && !used.contains(*name))
        .collect();
    assert!(unshown.is_empty(), "not on the dashboard: {unshown:?}");
}
