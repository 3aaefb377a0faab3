//! A `[[checks]]` entry: the keys every check has, its schedule (see
//! [`super::schedule`]) and the section of its `type`, which the type's own
//! module defines and resolves (`probe::http::config`, ...). Adding a type
//! is its module and one arm of [`TypeSection`].

use std::sync::Arc;

use serde::de::{self, Deserializer, IntoDeserializer, Visitor};
use serde::{Deserialize, Serialize};
use serde_aux::serde_introspection::serde_introspect;
use serde_json::{Map, Value};

use super::bounded::Period;
use super::cron::{CronError, CronSchedule};
use super::problems::{Problems, Scope, nearest, quoted};
use super::schedule::{Schedule, ScheduleSection};
use crate::health::{Group, Groups};
use crate::probe::ProbeSpec;
use crate::probe::cert::TlsProbeConfig;
use crate::probe::disk::DiskConfig;
use crate::probe::dns::DnsConfig;
use crate::probe::exec::{ExecConfig, ExitCodesKind};
use crate::probe::grpc::GrpcConfig;
use crate::probe::http::HttpConfig;
use crate::probe::memory::MemoryConfig;
use crate::probe::tcp::TcpConfig;
use crate::probe::udp::UdpConfig;
use crate::scheduler::push::{PushConfig, PushSpec};
use crate::units::human;

/// Longest check name.
const MAX_NAME_LEN: usize = 63;
/// The keys of `[checks.expect]` that every type accepts.
const LATENCY_KEYS: [&str; 2] = ["max_duration", "slow"];
/// A check's actions: read by `events::config`, and no part of what the
/// check is (changing one does not restart the check's state).
const ACTION_KEYS: [&str; 2] = ["on_failure", "on_recovery"];

/// The section of a check's `type`: the variant is the `type`, its keys sit
/// beside the common ones in the same table.
///
/// serde reads it as `{type: {keys}}` (externally tagged), and the table is
/// put in that shape before parsing: serde's internally tagged enums buffer
/// the table and lose the path of an error inside it, and the path is what
/// names the key of each problem.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TypeSection {
    /// `type = "http"`
    Http(HttpConfig),
    /// `type = "tcp"`
    Tcp(TcpConfig),
    /// `type = "exec"`
    Exec(ExecConfig),
    /// `type = "script"`: exec with Nagios exit codes by default.
    Script(ExecConfig),
    /// `type = "grpc"`
    Grpc(GrpcConfig),
    /// `type = "dns"`
    Dns(DnsConfig),
    /// `type = "tls"`
    Tls(TlsProbeConfig),
    /// `type = "disk"`
    Disk(DiskConfig),
    /// `type = "memory"`
    Memory(MemoryConfig),
    /// `type = "udp"`
    Udp(UdpConfig),
    /// `type = "push"`
    Push(PushConfig),
}

impl TypeSection {
    /// What the check runs on, or `None` with every problem reported to `p`.
    fn resolve(self, p: &mut Scope<'_>) -> Option<Source> {
        let probe = match self {
            TypeSection::Http(c) => ProbeSpec::Http(Arc::new(c.resolve(p)?)),
            TypeSection::Tcp(c) => ProbeSpec::Tcp(c.resolve(p)?),
            TypeSection::Exec(c) => ProbeSpec::Exec(Box::new(c.resolve(p, ExitCodesKind::Exact)?)),
            TypeSection::Script(c) => {
                ProbeSpec::Exec(Box::new(c.resolve(p, ExitCodesKind::Nagios)?))
            }
            TypeSection::Grpc(c) => ProbeSpec::Grpc(Box::new(c.resolve(p)?)),
            TypeSection::Dns(c) => ProbeSpec::Dns(Box::new(c.resolve(p)?)),
            TypeSection::Tls(c) => ProbeSpec::Tls(Box::new(c.resolve(p)?)),
            TypeSection::Disk(c) => ProbeSpec::Disk(Box::new(c.resolve(p)?)),
            TypeSection::Memory(c) => ProbeSpec::Memory(Box::new(c.resolve(p)?)),
            TypeSection::Udp(c) => ProbeSpec::Udp(Box::new(c.resolve(p)?)),
            TypeSection::Push(c) => return c.resolve(p).map(Source::Push),
        };
        Some(Source::Probe(probe))
    }
}

/// What a check's results come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A probe, run on the check's schedule.
    Probe(ProbeSpec),
    /// Reports posted to the admin API, with a deadline between them.
    Push(PushSpec),
}

/// The keys every `[[checks]]` entry has, whatever its `type` (besides the
/// schedule's, and `type` itself).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CheckCommon {
    // The order of the fields is the order unknown-key messages list them in.
    /// Unique name: lowercase letters, digits, `_` and `-`, at most 63 characters.
    pub name: CheckName,
    /// Verdicts this check takes part in: any of `liveness`, `readiness`,
    /// `startup`. An empty list runs and reports the check without letting it
    /// decide any verdict. Default `["readiness"]`.
    #[serde(default = "default_groups")]
    pub groups: Vec<Group>,
    /// A failing critical check fails its verdicts; a failing non-critical one
    /// reports `warn` and does not. Default `true`.
    #[serde(default = "yes")]
    pub critical: bool,
    /// Marks a check of something every instance shares (a database, a
    /// queue, an upstream API). A failing dependency check does not fail
    /// readiness: it reports `fail` (metrics, alerts, `/health`) while
    /// `/readyz` stays 200 with the failure named. Readiness that fails on a
    /// shared dependency takes every instance out of rotation at once, and
    /// a load balancer with nowhere to send traffic answers 503 for all of
    /// it; serving and letting requests fail on the dependency is usually
    /// better. Leave it `false` when an instance can fail the dependency on
    /// its own (its own connection pool, its own credentials) and should then
    /// leave rotation. Liveness is never affected by a dependency check.
    /// Default `false`.
    #[serde(default)]
    pub dependency: bool,
    /// `false` keeps the check configured (and validated) but idle: it never
    /// runs, takes part in no verdict and no score, and the API lists it as
    /// disabled. Default `true`.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub enabled: bool,
    /// Runs on a cron schedule instead of every `interval`: five fields
    /// (minute hour day-of-month month day-of-week) or `@hourly`, `@daily`...,
    /// in `timezone`. The check also runs once at start (after
    /// `initial_delay`), so it has a verdict before the first occurrence.
    /// Not with `interval`, `start_interval` or `failing_interval`. Off
    /// unless set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// The IANA time zone of `schedule` (`Europe/Berlin`); daylight-saving
    /// changes neither skip nor repeat a run. Default `UTC`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// What the check is about, for people: shown in the API, the status
    /// page and notifications. At most 512 characters, one line. Changing it
    /// does not restart the check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Description>,
    /// Labels to find the check by (`?tag=` in the API): at most 16, each
    /// 1 to 63 of `A-Z a-z 0-9 _ - . : / =` (`team=payments` works).
    /// Changing them does not restart the check.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
    /// How much the check counts in the health score, 0 to 100 (0 leaves
    /// it out). Default `1`. Changing it does not restart the check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<Weight>,
}

/// Most tags on one check.
const MAX_TAGS: usize = 16;
/// Longest tag.
const MAX_TAG_LEN: usize = 63;
/// Longest description, in characters.
const MAX_DESCRIPTION: usize = 512;
/// Heaviest weight.
const MAX_WEIGHT: f64 = 100.0;
/// Keys that describe a check to people (and to the score) without
/// changing what it does: changing them keeps its state.
const META_KEYS: [&str; 3] = ["description", "tags", "weight"];

/// A check's tag: 1 to 63 of `A-Z a-z 0-9 _ - . : / =`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Tag(String);

impl Tag {
    /// The tag.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Tag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let tag = String::deserialize(d)?;
        let valid = !tag.is_empty()
            && tag.len() <= MAX_TAG_LEN
            && tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.:/=".contains(&b));
        if valid {
            Ok(Self(tag))
        } else {
            Err(de::Error::custom(format!(
                "a tag must be 1 to {MAX_TAG_LEN} of A-Z, a-z, 0-9, `_`, `-`, `.`, `:`, `/` and `=`"
            )))
        }
    }
}

/// A check's description: one line of at most 512 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Description(Box<str>);

impl<'de> Deserialize<'de> for Description {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text.chars().count() > MAX_DESCRIPTION {
            return Err(de::Error::custom(format!(
                "at most {MAX_DESCRIPTION} characters"
            )));
        }
        if text.chars().any(char::is_control) {
            return Err(de::Error::custom("one line, without control characters"));
        }
        Ok(Self(text.into_boxed_str()))
    }
}

/// A check's weight in the health score: 0 to 100.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Weight(f64);

impl<'de> Deserialize<'de> for Weight {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let weight = f64::deserialize(d)?;
        if (0.0..=MAX_WEIGHT).contains(&weight) {
            Ok(Self(weight))
        } else {
            Err(de::Error::custom(format!("must be 0 to {MAX_WEIGHT}")))
        }
    }
}

/// What a check says about itself to people and to the score; shared by
/// the check and every snapshot of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Meta {
    /// `description`.
    pub description: Option<Box<str>>,
    /// `tags`, as written.
    pub tags: Box<[Arc<str>]>,
    /// `weight` (default 1).
    pub weight: f64,
}

impl Default for Meta {
    fn default() -> Self {
        Self {
            description: None,
            tags: Box::new([]),
            weight: 1.0,
        }
    }
}

impl Meta {
    /// Whether `tag` is one of its tags.
    pub fn tagged(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| &**t == tag)
    }
}

fn default_groups() -> Vec<Group> {
    vec![Group::Readiness]
}

fn yes() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

/// A check's name: 1 to 63 of `a-z`, `0-9`, `_` and `-`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct CheckName(String);

impl CheckName {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `name`, when it is a valid check name.
    pub fn new(name: impl Into<String>) -> Result<Self, String> {
        let name = name.into();
        let valid = !name.is_empty()
            && name.len() <= MAX_NAME_LEN
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if valid {
            Ok(Self(name))
        } else {
            Err(format!(
                "must be 1 to {MAX_NAME_LEN} characters of a-z, 0-9, `_` and `-`"
            ))
        }
    }
}

impl<'de> Deserialize<'de> for CheckName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        CheckName::new(String::deserialize(d)?).map_err(de::Error::custom)
    }
}

/// `expect.max_duration` and `expect.slow`: a latency expectation every
/// check type accepts in its `[checks.expect]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LatencySection {
    /// A run that passes but takes longer than this counts as `slow`. More
    /// than 0s, at most `"365d"` and not more than the timeout. Off unless set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration: Option<Period>,
    /// What a slow run is: `fail` (a failure, the default) or `warn` (a
    /// success with a warning: the check reports `warn` and fails no verdict).
    #[serde(default)]
    pub slow: SlowMode,
}

/// How a run slower than `expect.max_duration` counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SlowMode {
    /// As a failure (`slow`).
    #[default]
    Fail,
    /// As a success with a warning (`slow`).
    Warn,
}

/// `expect.max_duration` with `expect.slow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxDuration {
    /// Slower passing runs are `slow`.
    pub limit: std::time::Duration,
    /// Whether `slow` fails or warns.
    pub slow: SlowMode,
}

/// One validated check.
#[derive(Debug, Clone)]
pub struct Check {
    /// Unique name.
    pub name: Arc<str>,
    /// Its `type`, as written.
    pub kind: &'static str,
    /// Verdicts it takes part in.
    pub groups: Groups,
    /// Whether its failure fails its verdicts.
    pub critical: bool,
    /// A shared dependency: its failure does not fail readiness.
    pub dependency: bool,
    /// Latency expectation applied to every run.
    pub max_duration: Option<MaxDuration>,
    /// `enabled`: `false` keeps it configured but idle.
    pub enabled: bool,
    /// `schedule`: runs at its occurrences instead of every interval.
    pub cron: Option<CronSchedule>,
    /// Description, tags and weight.
    pub meta: Arc<Meta>,
    /// When and how often it runs, and how results become a verdict.
    pub schedule: Schedule,
    /// What its results come from.
    pub source: Source,
    /// The check as written (defaults applied into `schedule`), to tell a
    /// changed check from an unchanged one on reload.
    pub definition: Definition,
}

impl Check {
    /// Whether `other` is this check unchanged: the same table as written,
    /// the same schedule once defaults are applied (a changed `[defaults]`
    /// changes it) and the same files read (a CA bundle).
    pub fn same_as(&self, other: &Check) -> bool {
        self.schedule == other.schedule && self.definition == other.definition
    }
}

/// With the check's resolved `schedule` (compared by [`Check::same_as`], not
/// copied here), what identifies its behaviour: its table as written
/// (compact JSON with sorted keys: a few hundred bytes, where the parsed tree
/// takes several times that per check and copy) and what the files it read
/// held when loaded. `Debug` shows nothing: the table may hold header values
/// and passwords.
#[derive(Clone, PartialEq)]
pub struct Definition {
    table: Box<str>,
    inputs: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Definition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Definition(..)")
    }
}

/// A check built in code: the keys of a `[[checks]]` table, typed. It
/// resolves through the same rules as a table read from a file, and no
/// `HEALTHGATE_*` variable applies to it.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckConfig {
    /// The keys every check has.
    pub common: CheckCommon,
    /// Its schedule; unset keys take the built-in defaults.
    pub schedule: ScheduleSection,
    /// `expect.max_duration` and `expect.slow`.
    pub latency: LatencySection,
    /// Its type and that type's keys.
    pub section: TypeSection,
}

impl CheckConfig {
    /// A critical readiness check named `name` (which must be a valid name)
    /// with every other key at its default.
    pub fn new(name: &str, section: TypeSection) -> Result<Self, String> {
        Ok(Self {
            common: CheckCommon {
                name: CheckName::new(name)?,
                groups: default_groups(),
                critical: true,
                dependency: false,
                enabled: true,
                schedule: None,
                timezone: None,
                description: None,
                tags: Vec::new(),
                weight: None,
            },
            schedule: ScheduleSection::default(),
            latency: LatencySection::default(),
            section,
        })
    }

    /// The check as a `[[checks]]` table, as a file would hold it.
    pub fn table(&self) -> Value {
        let mut table = Map::new();
        let mut add = |value: Result<Value, serde_json::Error>| {
            if let Ok(Value::Object(keys)) = value {
                table.extend(keys);
            }
        };
        add(serde_json::to_value(&self.common));
        add(serde_json::to_value(self.schedule));
        if let Ok(Value::Object(tagged)) = serde_json::to_value(&self.section)
            && let Some((kind, Value::Object(keys))) = tagged.into_iter().next()
        {
            table.insert("type".into(), Value::String(kind));
            table.extend(keys);
        }
        if self.latency != LatencySection::default()
            && let Ok(Value::Object(latency)) = serde_json::to_value(self.latency)
        {
            let expect = table
                .entry("expect")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(expect) = expect {
                expect.extend(latency);
            }
        }
        Value::Object(table)
    }

    /// The runnable check, or every problem with it.
    pub fn resolve(&self) -> Result<Check, Vec<super::Problem>> {
        let mut problems = Problems::default();
        let check = parse(&mut problems, 0, &self.table(), &ScheduleSection::default());
        match check {
            Some(check) if problems.is_empty() => Ok(check),
            _ => Err(problems.into_vec()),
        }
    }
}

/// The keys of `TypeSection`'s variant `kind`, without parsing anything:
/// what serde's derive gives the variant's struct.
fn section_keys(kind: &str) -> &'static [&'static str] {
    struct Variant<'a>(&'a str, &'a mut &'static [&'static str]);
    struct Fields<'a>(&'a mut &'static [&'static str]);
    type Error = de::value::Error;

    impl<'de> Deserializer<'de> for Variant<'_> {
        type Error = Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
            Err(de::Error::custom("keys only"))
        }
        fn deserialize_enum<V: Visitor<'de>>(
            self,
            _: &'static str,
            _: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, Error> {
            visitor.visit_enum(self)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map struct identifier ignored_any
        }
    }
    impl<'de, 'a> de::EnumAccess<'de> for Variant<'a> {
        type Error = Error;
        type Variant = Fields<'a>;
        fn variant_seed<S: de::DeserializeSeed<'de>>(
            self,
            seed: S,
        ) -> Result<(S::Value, Fields<'a>), Error> {
            let name: de::value::StrDeserializer<'_, Error> = self.0.into_deserializer();
            Ok((seed.deserialize(name)?, Fields(self.1)))
        }
    }
    impl<'de> de::VariantAccess<'de> for Fields<'_> {
        type Error = Error;
        fn unit_variant(self) -> Result<(), Error> {
            Ok(())
        }
        fn newtype_variant_seed<S: de::DeserializeSeed<'de>>(
            self,
            seed: S,
        ) -> Result<S::Value, Error> {
            seed.deserialize(self)
        }
        fn tuple_variant<V: Visitor<'de>>(self, _: usize, _: V) -> Result<V::Value, Error> {
            Err(de::Error::custom("keys only"))
        }
        fn struct_variant<V: Visitor<'de>>(
            self,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Error> {
            *self.0 = fields;
            Err(de::Error::custom("keys only"))
        }
    }
    impl<'de> Deserializer<'de> for Fields<'_> {
        type Error = Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
            Err(de::Error::custom("keys only"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Error> {
            *self.0 = fields;
            Err(de::Error::custom("keys only"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }

    let mut keys: &'static [&'static str] = &[];
    let _ = TypeSection::deserialize(Variant(kind, &mut keys));
    keys
}

/// Parses and resolves the check at `index` of `[[checks]]`, reporting
/// every problem to `problems`; `defaults` is the `[defaults]` section.
pub(super) fn parse(
    problems: &mut Problems,
    index: usize,
    item: &Value,
    defaults: &ScheduleSection,
) -> Option<Check> {
    let fallback = format!("checks[{index}]");
    let Value::Object(table) = item else {
        problems.push(Some(&fallback), "", "expected a table".into());
        return None;
    };
    let label = table
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map_or(fallback, str::to_owned);
    let label = Some(label.as_str());
    let kinds = serde_introspect::<TypeSection>();
    let kind = match table.get("type") {
        Some(Value::String(written)) => kinds.iter().find(|k| **k == written).ok_or_else(|| {
            let hint = nearest(written, kinds.iter().copied())
                .map(|n| format!(" (did you mean `{n}`?)"))
                .unwrap_or_default();
            format!("unknown type `{written}`{hint}; one of {}", quoted(kinds))
        }),
        Some(_) => Err(format!("expected a string, one of {}", quoted(kinds))),
        None => Err(format!("missing; one of {}", quoted(kinds))),
    };
    let kind = match kind {
        Ok(kind) => *kind,
        Err(message) => {
            // Nothing else is parsed without a known type, but a bad name is still named.
            let written = table.get("name").and_then(Value::as_str);
            if let Some(Err(name)) = written.map(CheckName::new) {
                problems.push(label, "name", name);
            }
            problems.push(label, "type", message);
            return None;
        }
    };
    let common_keys = serde_introspect::<CheckCommon>();
    let schedule_keys = serde_introspect::<ScheduleSection>();
    let section_keys = section_keys(kind);
    // `expect` holding only the latency keys is every type's.
    let latency_only = table
        .get("expect")
        .and_then(Value::as_object)
        .is_some_and(|e| !e.is_empty() && e.keys().all(|k| LATENCY_KEYS.contains(&k.as_str())));
    // In the order the reference lists them: name, type, groups, critical,
    // the schedule, dependency, then the type's own.
    let (first, rest) = common_keys.split_at(1.min(common_keys.len()));
    let (middle, last) = rest.split_at(2.min(rest.len()));
    let allowed: Vec<&str> = first
        .iter()
        .chain(&["type"])
        .chain(middle)
        .chain(schedule_keys)
        .chain(last)
        .chain((latency_only && !section_keys.contains(&"expect")).then_some(&"expect"))
        .chain(section_keys)
        .chain(&ACTION_KEYS)
        .copied()
        .collect();
    problems.unknown_keys(label, "", table, &allowed);

    let mut common = Map::new();
    let mut schedule = Map::new();
    let mut section = Map::new();
    let mut latency = Map::new();
    for (key, value) in table {
        let key_str = key.as_str();
        if common_keys.contains(&key_str) {
            common.insert(key.clone(), value.clone());
        } else if schedule_keys.contains(&key_str) {
            schedule.insert(key.clone(), value.clone());
        } else if key_str == "expect"
            && let Value::Object(expect) = value
        {
            // `expect.max_duration` and `expect.slow` apply to every type;
            // the rest of `expect` is the type's.
            let mut own = Map::new();
            for (k, v) in expect {
                if LATENCY_KEYS.contains(&k.as_str()) {
                    latency.insert(k.clone(), v.clone());
                } else {
                    own.insert(k.clone(), v.clone());
                }
            }
            if !own.is_empty() && section_keys.contains(&key_str) {
                section.insert(key.clone(), Value::Object(own));
            }
        } else if section_keys.contains(&key_str) {
            section.insert(key.clone(), value.clone());
        }
    }
    let common: Option<CheckCommon> = problems.parse(label, "", Value::Object(common));
    let before_schedule = problems.count();
    let schedule: Option<ScheduleSection> = problems.parse(label, "", Value::Object(schedule));
    // A key refused here falls back to its default: a rule across keys
    // would then judge a value the user did not write.
    let schedule_as_written = problems.count() == before_schedule;
    let mut tagged = Map::new();
    tagged.insert(kind.to_owned(), Value::Object(section));
    let section: Option<TypeSection> = problems.parse_variant(label, Value::Object(tagged));
    let wrote_max_duration = latency.contains_key("max_duration");
    let wrote_slow = latency.contains_key("slow");
    let latency = if latency.is_empty() {
        Some(LatencySection::default())
    } else {
        problems.parse(label, "expect", Value::Object(latency))
    };
    if wrote_slow && !wrote_max_duration {
        problems.push(
            label,
            "expect.slow",
            "has no effect without `expect.max_duration`".into(),
        );
    }

    let mut scope = problems.scope(label);
    let source = section.and_then(|s| s.resolve(&mut scope));
    let inputs = scope.take_inputs();
    let schedule = schedule?.over(defaults).resolve();
    // The rule across the schedule and `expect` only for a check otherwise sound.
    let (common, source) = (common?, source?);
    let max_duration = match latency? {
        LatencySection {
            max_duration: None, ..
        } => {
            if wrote_slow || wrote_max_duration {
                return None;
            }
            None
        }
        LatencySection {
            max_duration: Some(limit),
            slow,
        } => {
            let limit = limit.get();
            if schedule_as_written && limit > schedule.timeout {
                problems.push(
                    label,
                    "expect.max_duration",
                    format!(
                        "is more than the timeout ({}): a run that slow already fails as `timeout`",
                        human(schedule.timeout)
                    ),
                );
                return None;
            }
            Some(MaxDuration { limit, slow })
        }
    };
    let cron = match (&common.schedule, &common.timezone) {
        (Some(pattern), tz) => {
            let written = ["interval", "start_interval", "failing_interval"]
                .into_iter()
                .filter(|k| table.contains_key(*k))
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>();
            if !written.is_empty() {
                let message = format!("runs the check instead of {}: give one", written.join(", "));
                problems.push(label, "schedule", message);
                return None;
            }
            match CronSchedule::parse(pattern, tz.as_deref().unwrap_or("UTC")) {
                Ok(cron) => Some(cron),
                Err(error) => {
                    let key = match error {
                        CronError::Zone(_) => "timezone",
                        CronError::Pattern(_) => "schedule",
                    };
                    problems.push(label, key, error.to_string());
                    return None;
                }
            }
        }
        (None, Some(_)) => {
            problems.push(label, "timezone", "has no effect without `schedule`".into());
            return None;
        }
        (None, None) => None,
    };
    if common.tags.len() > MAX_TAGS {
        problems.push(label, "tags", format!("at most {MAX_TAGS} tags"));
        return None;
    }
    let meta = Meta {
        description: common.description.map(|d| d.0),
        tags: common.tags.into_iter().map(|t| Arc::from(t.0)).collect(),
        weight: common.weight.map_or(1.0, |w| w.0),
    };
    Some(Check {
        name: Arc::from(common.name.0),
        kind,
        groups: common.groups.iter().copied().collect(),
        critical: common.critical,
        dependency: common.dependency,
        max_duration,
        enabled: common.enabled,
        cron,
        meta: Arc::new(meta),
        schedule,
        source,
        definition: Definition {
            // serde_json's maps are sorted: equal tables, equal text.
            table: behaviour(table).into_boxed_str(),
            inputs,
        },
    })
}

/// The table as compact JSON, without what does not change what the check
/// does (its actions, its description, tags and weight).
fn behaviour(table: &Map<String, Value>) -> String {
    let aside = |k: &str| ACTION_KEYS.contains(&k) || META_KEYS.contains(&k);
    if !table.keys().any(|k| aside(k)) {
        return Value::Object(table.clone()).to_string();
    }
    let kept: Map<String, Value> = table
        .iter()
        .filter(|(k, _)| !aside(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Value::Object(kept).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::tls::TlsSection;

    #[test]
    fn each_type_names_its_own_keys() {
        assert!(section_keys("http").contains(&"url"));
        assert!(section_keys("script").contains(&"command"));
        assert_eq!(section_keys("push"), ["ttl"]);
        assert!(section_keys("nope").is_empty());
        for kind in serde_introspect::<TypeSection>() {
            assert!(!section_keys(kind).is_empty(), "{kind}");
        }
    }

    #[test]
    fn a_check_built_in_code_is_the_table_a_file_would_hold() {
        let mut http = HttpConfig::get("https://127.0.0.1:8090/readyz");
        http.tls = TlsSection {
            insecure_skip_verify: true,
            ..TlsSection::default()
        };
        let mut built = CheckConfig::new("self", TypeSection::Http(http)).unwrap();
        built.schedule.timeout = Some(Period::new(std::time::Duration::from_secs(2)).unwrap());
        let table = built.table();
        assert_eq!(table["type"], "http");
        assert_eq!(table["timeout"], "2s");
        assert_eq!(table["tls"]["insecure_skip_verify"], true);
        let check = built.resolve().unwrap();
        assert_eq!((&*check.name, check.kind), ("self", "http"));
        assert_eq!(check.schedule.timeout, std::time::Duration::from_secs(2));
        let Source::Probe(ProbeSpec::Http(spec)) = check.source else {
            panic!("not an http check");
        };
        assert!(spec.tls.insecure_skip_verify);
        assert!(CheckConfig::new("Not Valid", TypeSection::Http(HttpConfig::get("x"))).is_err());
    }

    #[test]
    fn latency_keys_ride_in_expect_beside_the_types_own() {
        let mut problems = Problems::default();
        let table = serde_json::json!({
            "name": "s", "type": "script", "command": ["true"], "timeout": "2s",
            "expect": {"max_duration": "500ms", "slow": "warn", "exit_codes": "exact"}
        });
        let check = parse(&mut problems, 0, &table, &ScheduleSection::default()).unwrap();
        assert!(problems.is_empty());
        assert_eq!(
            check.max_duration,
            Some(MaxDuration {
                limit: std::time::Duration::from_millis(500),
                slow: SlowMode::Warn
            })
        );
        let Source::Probe(ProbeSpec::Exec(spec)) = check.source else {
            panic!("not an exec check");
        };
        assert_eq!(spec.exit_codes, crate::probe::exec::ExitCodes::Exact(0));
    }

    #[test]
    fn description_tags_weight_and_schedule_are_checked() {
        let parsed = |extra: serde_json::Value| {
            let mut table =
                serde_json::json!({"name": "db", "type": "tcp", "address": "127.0.0.1:5432"});
            table
                .as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            let mut problems = Problems::default();
            let check = parse(&mut problems, 0, &table, &ScheduleSection::default());
            let messages: Vec<String> = problems
                .into_vec()
                .iter()
                .map(ToString::to_string)
                .collect();
            (check, messages)
        };
        let (plain, _) = parsed(serde_json::json!({}));
        let (described, problems) = parsed(serde_json::json!({
            "description": "orders database", "tags": ["team=orders", "db"], "weight": 2.5
        }));
        assert!(problems.is_empty(), "{problems:?}");
        let (plain, described) = (plain.unwrap(), described.unwrap());
        assert!(
            plain.same_as(&described),
            "meta keys do not restart the check"
        );
        assert_eq!(described.meta.weight, 2.5);
        assert!(described.meta.tagged("team=orders") && !described.meta.tagged("team"));
        assert_eq!(plain.meta.weight, 1.0);
        let (cron, problems) =
            parsed(serde_json::json!({"schedule": "0 3 * * *", "timezone": "Europe/Paris"}));
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(cron.unwrap().cron.unwrap().pattern(), "0 3 * * *");
        let (disabled, _) = parsed(serde_json::json!({"enabled": false}));
        assert!(
            !disabled.unwrap().same_as(&plain),
            "enabled is what it does"
        );

        let too_many: Vec<String> = (0..=MAX_TAGS).map(|i| format!("t{i}")).collect();
        for (extra, key) in [
            (serde_json::json!({"tags": ["has space"]}), "tags[0]"),
            (serde_json::json!({"tags": [""]}), "tags[0]"),
            (serde_json::json!({"tags": too_many}), "tags"),
            (
                serde_json::json!({"description": "two\nlines"}),
                "description",
            ),
            (
                serde_json::json!({"description": "x".repeat(MAX_DESCRIPTION + 1)}),
                "description",
            ),
            (serde_json::json!({"weight": 101}), "weight"),
            (serde_json::json!({"weight": -1}), "weight"),
            (serde_json::json!({"enabled": "no"}), "enabled"),
            (serde_json::json!({"schedule": "0 */6 * *"}), "schedule"),
            (
                serde_json::json!({"schedule": "@daily", "interval": "1m"}),
                "schedule",
            ),
            (
                serde_json::json!({"schedule": "@daily", "failing_interval": "1m"}),
                "schedule",
            ),
            (
                serde_json::json!({"schedule": "@daily", "timezone": "Berlin"}),
                "timezone",
            ),
            (serde_json::json!({"timezone": "UTC"}), "timezone"),
        ] {
            let (_, problems) = parsed(extra.clone());
            assert!(
                problems
                    .iter()
                    .any(|p| p.contains("check \"db\"") && p.contains(&format!("key `{key}`"))),
                "{extra}: {problems:?}"
            );
        }
    }
}
