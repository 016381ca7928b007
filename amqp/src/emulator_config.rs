//! The Event Hubs emulator's `Config.json`, so a setup written for Microsoft's emulator
//! (Azure/azure-event-hubs-emulator-installer, `EventHub-Emulator/Config/Config.json` and
//! `Schema/Config-schema.json`) runs on Runnel unchanged:
//!
//! ```json
//! {"UserConfig": {"NamespaceConfig": [{"Type": "EventHub", "Name": "emulatorNs1",
//!   "Entities": [{"Name": "eh1", "PartitionCount": 2, "ConsumerGroups": [{"Name": "cg1"}]}]}],
//!   "LoggingConfig": {"Type": "File"}}}
//! ```
//!
//! Pure parsing and validation; the broker applies the result. What is wrong for Runnel
//! (a name Kafka refuses, a duplicate, a wrong JSON type) is an error naming the JSON
//! path. What is only outside the emulator's limits (1 namespace, 10 hubs, 32 partitions,
//! 20 consumer groups) or its schema's letter is a warning, since Runnel goes beyond them.
//! Unknown fields are ignored, for configs written for newer emulators.

use runnel_core::topics::{collision_key, validate_topic_name};
use serde_json::{Map, Value};
use thiserror::Error;

/// The consumer group every hub has. The emulator creates it and refuses a declared one.
pub const DEFAULT_CONSUMER_GROUP: &str = "$Default";

/// Largest file accepted; the emulator's own limits make a real one a few KiB.
pub const MAX_CONFIG_LEN: usize = 1 << 20;

/// The most partitions a hub may have: `Broker::create_topic`'s bound.
pub const MAX_PARTITION_COUNT: u32 = 100_000;

/// Event Hubs' limit on consumer group names, and the hard bound here.
const CONSUMER_GROUP_SERVICE_MAX_LEN: usize = 50;
const CONSUMER_GROUP_MAX_LEN: usize = 249;

// The emulator's limits (Config-schema.json maxItems / maximum).
const EMULATOR_MAX_NAMESPACES: usize = 1;
const EMULATOR_MAX_ENTITIES: usize = 10;
const EMULATOR_MAX_PARTITIONS: u32 = 32;
const EMULATOR_MAX_CONSUMER_GROUPS: usize = 20;
const EMULATOR_NAMESPACE: &str = "emulatorNs1";

/// A parsed and validated Config.json.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmulatorConfig {
    /// The (first) namespace's name; the emulator only knows `emulatorNs1`.
    pub namespace: String,
    /// Every hub of every namespace, in file order.
    pub hubs: Vec<HubConfig>,
    /// What the emulator would refuse but Runnel accepts, for the operator's log.
    pub warnings: Vec<String>,
}

/// One event hub (an "entity").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubConfig {
    /// A valid Kafka topic name.
    pub name: String,
    pub partition_count: u32,
    /// [`DEFAULT_CONSUMER_GROUP`] first, then the declared groups in file order.
    pub consumer_groups: Vec<String>,
}

/// Why a Config.json was refused. `path` is a JSON path such as
/// `UserConfig.NamespaceConfig[0].Entities[1].PartitionCount`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    #[error("Config.json is {len} bytes; at most {MAX_CONFIG_LEN} are accepted")]
    TooLarge { len: usize },
    #[error("Config.json is not valid JSON: {0}")]
    Json(String),
    #[error("Config.json: {path} must be {expected}, but is {found}")]
    Type {
        path: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("Config.json: {path} is required")]
    Missing { path: String },
    #[error("Config.json: {path}: {reason}")]
    Invalid { path: String, reason: String },
}

/// Parses the text of an emulator Config.json.
pub fn parse_emulator_config(text: &str) -> Result<EmulatorConfig, ConfigError> {
    if text.len() > MAX_CONFIG_LEN {
        return Err(ConfigError::TooLarge { len: text.len() });
    }
    // Editors on Windows save UTF-8 with a byte-order mark, which serde_json refuses.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // serde_json bounds nesting (128 levels), so hostile input cannot exhaust the stack.
    let root: Value = serde_json::from_str(text).map_err(|e| ConfigError::Json(e.to_string()))?;
    let mut warnings = Vec::new();

    let root = object(&root, "")?;
    let user = object(
        required(root, "", "UserConfig", &mut warnings)?,
        "UserConfig",
    )?;
    if field(user, "UserConfig", "LoggingConfig", &mut warnings).is_none() {
        warnings.push(
            "UserConfig.LoggingConfig is missing; the emulator requires it (Runnel ignores it)"
                .to_string(),
        );
    }

    let path = "UserConfig.NamespaceConfig";
    let namespaces = array(
        required(user, "UserConfig", "NamespaceConfig", &mut warnings)?,
        path,
    )?;
    if namespaces.is_empty() {
        return Err(invalid(path, "declares no namespace"));
    }
    if namespaces.len() > EMULATOR_MAX_NAMESPACES {
        warnings.push(format!(
            "{path} declares {} namespaces; the emulator allows {EMULATOR_MAX_NAMESPACES} \
             (Runnel serves the hubs of all of them under the first one's name)",
            namespaces.len()
        ));
    }

    let mut namespace = None;
    let mut hubs: Vec<HubConfig> = Vec::new();
    for (i, ns) in namespaces.iter().enumerate() {
        let ns_path = format!("{path}[{i}]");
        let ns = object(ns, &ns_path)?;

        if let Some(kind) = field(ns, &ns_path, "Type", &mut warnings) {
            let kind = string(kind, &format!("{ns_path}.Type"))?;
            if kind != "EventHub" {
                return Err(invalid(
                    &format!("{ns_path}.Type"),
                    &format!("is {kind:?}; only \"EventHub\" namespaces are supported"),
                ));
            }
        }

        let name_path = format!("{ns_path}.Name");
        let name = match field(ns, &ns_path, "Name", &mut warnings) {
            Some(v) => string(v, &name_path)?.to_string(),
            None => {
                warnings.push(format!(
                    "{name_path} is missing; using the emulator's {EMULATOR_NAMESPACE:?}"
                ));
                EMULATOR_NAMESPACE.to_string()
            }
        };
        if !valid_namespace_name(&name) {
            return Err(invalid(
                &name_path,
                &format!(
                    "{:?} is not a namespace name (a letter, then letters, digits or '-', \
                     ending in a letter or digit)",
                    echo(&name)
                ),
            ));
        }
        if name != EMULATOR_NAMESPACE {
            warnings.push(format!(
                "{name_path} is {name:?}; the emulator only accepts {EMULATOR_NAMESPACE:?}"
            ));
        }
        if namespace.is_none() {
            namespace = Some(name);
        }

        let entities_path = format!("{ns_path}.Entities");
        let entities = array(
            required(ns, &ns_path, "Entities", &mut warnings)?,
            &entities_path,
        )?;
        if entities.is_empty() {
            warnings.push(format!(
                "{entities_path} declares no event hub; the emulator requires at least one"
            ));
        }
        if entities.len() > EMULATOR_MAX_ENTITIES {
            warnings.push(format!(
                "{entities_path} declares {} event hubs; the emulator allows \
                 {EMULATOR_MAX_ENTITIES}",
                entities.len()
            ));
        }
        for (j, entity) in entities.iter().enumerate() {
            let hub = parse_hub(entity, &format!("{entities_path}[{j}]"), &mut warnings)?;
            if let Some(other) = hubs.iter().find(|h| same_hub(&h.name, &hub.name)) {
                return Err(invalid(
                    &format!("{entities_path}[{j}].Name"),
                    &format!(
                        "event hub {:?} is declared twice (as {:?} before; names are compared \
                         ignoring case, and '.' and '_' collide as in Kafka)",
                        hub.name, other.name
                    ),
                ));
            }
            hubs.push(hub);
        }
    }

    Ok(EmulatorConfig {
        namespace: namespace.unwrap_or_else(|| EMULATOR_NAMESPACE.to_string()),
        hubs,
        warnings,
    })
}

fn parse_hub(
    entity: &Value,
    path: &str,
    warnings: &mut Vec<String>,
) -> Result<HubConfig, ConfigError> {
    let entity = object(entity, path)?;

    let name_path = format!("{path}.Name");
    let name = string(required(entity, path, "Name", warnings)?, &name_path)?;
    validate_topic_name(name).map_err(|reason| invalid(&name_path, &reason))?;
    if !schema_entity_name(name) {
        warnings.push(format!(
            "{name_path} {name:?} does not start and end with a letter or digit, as the \
             emulator's schema requires"
        ));
    }

    let count_path = format!("{path}.PartitionCount");
    let partition_count = partition_count(
        required(entity, path, "PartitionCount", warnings)?,
        &count_path,
        warnings,
    )?;
    if partition_count > EMULATOR_MAX_PARTITIONS {
        warnings.push(format!(
            "{count_path} is {partition_count}; the emulator allows {EMULATOR_MAX_PARTITIONS}"
        ));
    }

    let mut consumer_groups = vec![DEFAULT_CONSUMER_GROUP.to_string()];
    let groups_path = format!("{path}.ConsumerGroups");
    if let Some(groups) = field(entity, path, "ConsumerGroups", warnings) {
        let groups = array(groups, &groups_path)?;
        if groups.len() > EMULATOR_MAX_CONSUMER_GROUPS {
            warnings.push(format!(
                "{groups_path} declares {} consumer groups; the emulator allows \
                 {EMULATOR_MAX_CONSUMER_GROUPS}",
                groups.len()
            ));
        }
        for (k, group) in groups.iter().enumerate() {
            let group_path = format!("{groups_path}[{k}]");
            let group = object(group, &group_path)?;
            let cg_path = format!("{group_path}.Name");
            let cg = string(required(group, &group_path, "Name", warnings)?, &cg_path)?;
            if cg.eq_ignore_ascii_case(DEFAULT_CONSUMER_GROUP) {
                warnings.push(format!(
                    "{cg_path} declares {cg:?}, which every hub has; the emulator refuses it"
                ));
                continue;
            }
            validate_consumer_group(cg).map_err(|reason| invalid(&cg_path, &reason))?;
            if cg.len() > CONSUMER_GROUP_SERVICE_MAX_LEN {
                warnings.push(format!(
                    "{cg_path} is {} characters; Event Hubs allows {CONSUMER_GROUP_SERVICE_MAX_LEN}",
                    cg.len()
                ));
            }
            // The SDKs name consumer groups in any case ($default, $Default).
            if consumer_groups.iter().any(|c| c.eq_ignore_ascii_case(cg)) {
                return Err(invalid(
                    &cg_path,
                    &format!("consumer group {cg:?} is declared twice (ignoring case)"),
                ));
            }
            consumer_groups.push(cg.to_string());
        }
    }

    Ok(HubConfig {
        name: name.to_string(),
        partition_count,
        consumer_groups,
    })
}

/// A JSON integer in 1..=[`MAX_PARTITION_COUNT`]. A string of digits is accepted with a
/// warning: Microsoft's own Spring Boot sample config writes `"PartitionCount": "2"`.
fn partition_count(
    value: &Value,
    path: &str,
    warnings: &mut Vec<String>,
) -> Result<u32, ConfigError> {
    let out_of_range = || {
        invalid(
            path,
            &format!("must be between 1 and {MAX_PARTITION_COUNT}, but is {value}"),
        )
    };
    let n = match value {
        Value::Number(n) => {
            if let Some(n) = n.as_u64() {
                n
            } else if n.is_i64() {
                return Err(out_of_range());
            } else {
                return Err(type_error(path, "an integer", value));
            }
        }
        Value::String(s) => match s.trim().parse::<u64>() {
            Ok(n) => {
                warnings.push(format!(
                    "{path} is the string {s:?}; the schema wants a number"
                ));
                n
            }
            Err(_) => return Err(type_error(path, "an integer", value)),
        },
        _ => return Err(type_error(path, "an integer", value)),
    };
    match u32::try_from(n) {
        Ok(n) if (1..=MAX_PARTITION_COUNT).contains(&n) => Ok(n),
        _ => Err(out_of_range()),
    }
}

/// Event Hubs' rule for consumer group names: letters, digits, '.', '_' and '-',
/// starting and ending with a letter or digit. The schema also allows '/', which the
/// service does not and which would break `…/ConsumerGroups/<cg>/Partitions/<p>`
/// addresses; ',' would break the topic config that lists the groups.
fn validate_consumer_group(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a consumer group name may not be empty".to_string());
    }
    if name.len() > CONSUMER_GROUP_MAX_LEN {
        return Err(format!(
            "a consumer group name may be at most {CONSUMER_GROUP_MAX_LEN} characters"
        ));
    }
    let inner_ok = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    let ends_ok = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if inner_ok && ends_ok {
        Ok(())
    } else {
        Err(format!(
            "{:?} is not a consumer group name (ASCII letters, digits, '.', '_' and '-', \
             starting and ending with a letter or digit)",
            echo(name)
        ))
    }
}

/// The schema's namespace pattern `^[A-Za-z][-A-Za-z0-9]*[A-Za-z0-9]$`.
fn valid_namespace_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b.len() <= 256
        && b[0].is_ascii_alphabetic()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
}

/// The schema's entity pattern, on a name that is already a valid Kafka topic name:
/// one character, or a letter or digit at both ends.
fn schema_entity_name(name: &str) -> bool {
    let b = name.as_bytes();
    match (b.first(), b.last()) {
        (Some(f), Some(l)) => f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric(),
        _ => false,
    }
}

/// Hubs are addressed case-insensitively by the SDKs, and Kafka refuses topics that
/// differ only in '.' versus '_'.
fn same_hub(a: &str, b: &str) -> bool {
    collision_key(a).eq_ignore_ascii_case(&collision_key(b))
}

/// Looks a field up by its exact name, else ignoring case (with a warning: the emulator's
/// .NET reader may be case-insensitive, but the schema spells the names one way).
fn field<'a>(
    obj: &'a Map<String, Value>,
    path: &str,
    key: &str,
    warnings: &mut Vec<String>,
) -> Option<&'a Value> {
    if let Some(v) = obj.get(key) {
        return Some(v);
    }
    let (found, v) = obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(key))?;
    warnings.push(format!(
        "{} is spelled {:?}; the schema spells it {key:?}",
        join(path, key),
        echo(found)
    ));
    Some(v)
}

fn required<'a>(
    obj: &'a Map<String, Value>,
    path: &str,
    key: &str,
    warnings: &mut Vec<String>,
) -> Result<&'a Value, ConfigError> {
    field(obj, path, key, warnings).ok_or_else(|| ConfigError::Missing {
        path: join(path, key),
    })
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn object<'a>(value: &'a Value, path: &str) -> Result<&'a Map<String, Value>, ConfigError> {
    value
        .as_object()
        .ok_or_else(|| type_error(display_path(path), "an object", value))
}

fn array<'a>(value: &'a Value, path: &str) -> Result<&'a Vec<Value>, ConfigError> {
    value
        .as_array()
        .ok_or_else(|| type_error(path, "an array", value))
}

fn string<'a>(value: &'a Value, path: &str) -> Result<&'a str, ConfigError> {
    value
        .as_str()
        .ok_or_else(|| type_error(path, "a string", value))
}

fn display_path(path: &str) -> &str {
    if path.is_empty() {
        "the top level"
    } else {
        path
    }
}

fn type_error(path: &str, expected: &'static str, found: &Value) -> ConfigError {
    let found = match found {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    ConfigError::Type {
        path: path.to_string(),
        expected,
        found,
    }
}

fn invalid(path: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        path: path.to_string(),
        reason: reason.to_string(),
    }
}

/// At most 64 characters of a user's value, for messages.
fn echo(s: &str) -> String {
    match s.char_indices().nth(64) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> EmulatorConfig {
        match parse_emulator_config(json) {
            Ok(c) => c,
            Err(e) => panic!("refused: {e}\n{json}"),
        }
    }

    fn refuse(json: &str) -> ConfigError {
        match parse_emulator_config(json) {
            Ok(c) => panic!("accepted as {c:?}\n{json}"),
            Err(e) => e,
        }
    }

    /// A config with one hub whose entity object is `entity`.
    fn with_entity(entity: &str) -> String {
        format!(
            r#"{{"UserConfig":{{"NamespaceConfig":[{{"Type":"EventHub","Name":"emulatorNs1",
            "Entities":[{entity}]}}],"LoggingConfig":{{"Type":"File"}}}}}}"#
        )
    }

    #[test]
    fn the_design_briefs_example() {
        let c = parse(&with_entity(
            r#"{"Name":"eh1","PartitionCount":2,"ConsumerGroups":[{"Name":"cg1"}]}"#,
        ));
        assert_eq!(
            c,
            EmulatorConfig {
                namespace: "emulatorNs1".into(),
                hubs: vec![HubConfig {
                    name: "eh1".into(),
                    partition_count: 2,
                    consumer_groups: vec!["$Default".into(), "cg1".into()],
                }],
                warnings: vec![],
            }
        );
    }

    #[test]
    fn consumer_groups_are_optional_and_default_is_not_duplicated() {
        let c = parse(&with_entity(r#"{"Name":"eh1","PartitionCount":1}"#));
        assert_eq!(c.hubs[0].consumer_groups, vec!["$Default"]);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);

        let c = parse(&with_entity(
            r#"{"Name":"eh1","PartitionCount":1,"ConsumerGroups":[{"Name":"$default"},{"Name":"a"}]}"#,
        ));
        assert_eq!(c.hubs[0].consumer_groups, vec!["$Default", "a"]);
        assert_eq!(c.warnings.len(), 1);
        assert!(
            c.warnings[0].contains("ConsumerGroups[0].Name"),
            "{:?}",
            c.warnings
        );
        assert!(
            c.warnings[0].contains("the emulator refuses it"),
            "{:?}",
            c.warnings
        );
    }

    #[test]
    fn duplicates_are_errors() {
        let e = refuse(&with_entity(
            r#"{"Name":"eh1","PartitionCount":1,"ConsumerGroups":[{"Name":"cg"},{"Name":"CG"}]}"#,
        ));
        assert_eq!(
            e.to_string(),
            "Config.json: UserConfig.NamespaceConfig[0].Entities[0].ConsumerGroups[1].Name: \
             consumer group \"CG\" is declared twice (ignoring case)"
        );
        for second in ["eh1", "EH1"] {
            let e = refuse(&with_entity(&format!(
                r#"{{"Name":"eh1","PartitionCount":1}},{{"Name":"{second}","PartitionCount":2}}"#
            )));
            assert!(
                matches!(&e, ConfigError::Invalid { path, .. }
                    if path == "UserConfig.NamespaceConfig[0].Entities[1].Name"),
                "{e}"
            );
        }
        // Kafka's '.' / '_' collision.
        let e = refuse(&with_entity(
            r#"{"Name":"a.b","PartitionCount":1},{"Name":"a_b","PartitionCount":1}"#,
        ));
        assert!(e.to_string().contains("declared twice"), "{e}");
        // Across namespaces too.
        let e = refuse(
            r#"{"UserConfig":{"NamespaceConfig":[
                {"Name":"emulatorNs1","Entities":[{"Name":"x","PartitionCount":1}]},
                {"Name":"other","Entities":[{"Name":"x","PartitionCount":1}]}],
                "LoggingConfig":{"Type":"File"}}}"#,
        );
        assert!(
            matches!(&e, ConfigError::Invalid { path, .. }
                if path == "UserConfig.NamespaceConfig[1].Entities[0].Name"),
            "{e}"
        );
    }

    #[test]
    fn names_must_suit_kafka_and_event_hubs() {
        // The schema allows '/' in hub names; Kafka does not.
        let e = refuse(&with_entity(r#"{"Name":"a/b","PartitionCount":1}"#));
        assert!(
            matches!(&e, ConfigError::Invalid { path, reason }
                if path.ends_with("Entities[0].Name") && reason.contains("Topic name is invalid")),
            "{e}"
        );
        let e = refuse(&with_entity(&format!(
            r#"{{"Name":"{}","PartitionCount":1}}"#,
            "h".repeat(250)
        )));
        assert!(
            e.to_string().contains("longer than the max allowed length"),
            "{e}"
        );
        for bad in ["a/b", "a,b", "-a", "a-", "", "$other", "ünï"] {
            let e = refuse(&with_entity(&format!(
                r#"{{"Name":"eh","PartitionCount":1,"ConsumerGroups":[{{"Name":"{bad}"}}]}}"#
            )));
            assert!(
                matches!(&e, ConfigError::Invalid { path, .. } if path.ends_with("ConsumerGroups[0].Name")),
                "{bad:?}: {e}"
            );
        }
        // Kafka-valid but outside the schema's pattern: a warning.
        let c = parse(&with_entity(r#"{"Name":"_hub","PartitionCount":1}"#));
        assert_eq!(c.hubs[0].name, "_hub");
        assert!(
            c.warnings[0].contains("start and end with a letter or digit"),
            "{:?}",
            c.warnings
        );
        let e = refuse(
            r#"{"UserConfig":{"NamespaceConfig":[{"Name":"1ns","Entities":[]}],"LoggingConfig":{}}}"#,
        );
        assert!(e.to_string().contains("is not a namespace name"), "{e}");
    }

    #[test]
    fn partition_counts() {
        for bad in ["0", "-1", "100001", "4294967296"] {
            let e = refuse(&with_entity(&format!(
                r#"{{"Name":"eh","PartitionCount":{bad}}}"#
            )));
            assert!(
                matches!(&e, ConfigError::Invalid { path, reason }
                    if path.ends_with("Entities[0].PartitionCount") && reason.contains("between 1 and 100000")),
                "{bad}: {e}"
            );
        }
        for (bad, found) in [
            ("2.5", "a number"),
            ("true", "a boolean"),
            ("\"two\"", "a string"),
            ("null", "null"),
        ] {
            let e = refuse(&with_entity(&format!(
                r#"{{"Name":"eh","PartitionCount":{bad}}}"#
            )));
            assert_eq!(
                e,
                ConfigError::Type {
                    path: "UserConfig.NamespaceConfig[0].Entities[0].PartitionCount".into(),
                    expected: "an integer",
                    found,
                },
                "{bad}"
            );
        }
        // Microsoft's Spring Boot sample writes the count as a string.
        let c = parse(&with_entity(r#"{"Name":"eh","PartitionCount":"2"}"#));
        assert_eq!(c.hubs[0].partition_count, 2);
        assert!(
            c.warnings[0].contains("the schema wants a number"),
            "{:?}",
            c.warnings
        );
        let e = refuse(&with_entity(r#"{"Name":"eh"}"#));
        assert_eq!(
            e.to_string(),
            "Config.json: UserConfig.NamespaceConfig[0].Entities[0].PartitionCount is required"
        );
    }

    #[test]
    fn emulator_limits_are_warnings() {
        let groups: Vec<String> = (0..21).map(|i| format!(r#"{{"Name":"g{i}"}}"#)).collect();
        let mut entities = vec![format!(
            r#"{{"Name":"big","PartitionCount":64,"ConsumerGroups":[{}]}}"#,
            groups.join(",")
        )];
        entities.extend((0..10).map(|i| format!(r#"{{"Name":"h{i}","PartitionCount":1}}"#)));
        let json = format!(
            r#"{{"UserConfig":{{"NamespaceConfig":[
                {{"Type":"EventHub","Name":"emulatorNs1","Entities":[{}]}},
                {{"Type":"EventHub","Name":"second","Entities":[{{"Name":"x","PartitionCount":1}}]}}],
                "LoggingConfig":{{"Type":"File"}}}}}}"#,
            entities.join(",")
        );
        let c = parse(&json);
        assert_eq!(c.namespace, "emulatorNs1");
        assert_eq!(c.hubs.len(), 12);
        assert_eq!(c.hubs[0].partition_count, 64);
        assert_eq!(c.hubs[0].consumer_groups.len(), 22);
        let all = c.warnings.join("\n");
        for needle in [
            "declares 2 namespaces; the emulator allows 1",
            "declares 11 event hubs; the emulator allows 10",
            "PartitionCount is 64; the emulator allows 32",
            "declares 21 consumer groups; the emulator allows 20",
            "NamespaceConfig[1].Name is \"second\"; the emulator only accepts \"emulatorNs1\"",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in\n{all}");
        }
        assert_eq!(c.warnings.len(), 5, "{all}");
    }

    #[test]
    fn wrong_types_name_the_path() {
        let cases: &[(&str, &str, &str, &str)] = &[
            ("[]", "the top level", "an object", "an array"),
            (r#"{"UserConfig":3}"#, "UserConfig", "an object", "a number"),
            (
                r#"{"UserConfig":{"NamespaceConfig":{},"LoggingConfig":{}}}"#,
                "UserConfig.NamespaceConfig",
                "an array",
                "an object",
            ),
            (
                r#"{"UserConfig":{"NamespaceConfig":["x"],"LoggingConfig":{}}}"#,
                "UserConfig.NamespaceConfig[0]",
                "an object",
                "a string",
            ),
            (
                r#"{"UserConfig":{"NamespaceConfig":[{"Name":7,"Entities":[]}],"LoggingConfig":{}}}"#,
                "UserConfig.NamespaceConfig[0].Name",
                "a string",
                "a number",
            ),
            (
                r#"{"UserConfig":{"NamespaceConfig":[{"Entities":[{"Name":"a","PartitionCount":1,"ConsumerGroups":[{"Name":null}]}]}],"LoggingConfig":{}}}"#,
                "UserConfig.NamespaceConfig[0].Entities[0].ConsumerGroups[0].Name",
                "a string",
                "null",
            ),
            (
                r#"{"UserConfig":{"NamespaceConfig":[{"Entities":[{"Name":"a","PartitionCount":1,"ConsumerGroups":"cg"}]}],"LoggingConfig":{}}}"#,
                "UserConfig.NamespaceConfig[0].Entities[0].ConsumerGroups",
                "an array",
                "a string",
            ),
        ];
        for &(json, path, expected, found) in cases {
            assert_eq!(
                refuse(json),
                ConfigError::Type {
                    path: path.into(),
                    expected,
                    found
                },
                "{json}"
            );
        }
        let e =
            refuse(r#"{"UserConfig":{"NamespaceConfig":[{"Type":"ServiceBus","Entities":[]}]}}"#);
        assert!(
            e.to_string().contains("only \"EventHub\" namespaces"),
            "{e}"
        );
        assert_eq!(
            refuse("{}"),
            ConfigError::Missing {
                path: "UserConfig".into()
            }
        );
        assert!(matches!(refuse("{\"UserConfig\":"), ConfigError::Json(_)));
        assert!(matches!(
            refuse(r#"{"UserConfig":{"NamespaceConfig":[],"LoggingConfig":{}}}"#),
            ConfigError::Invalid { .. }
        ));
    }

    #[test]
    fn unknown_fields_are_ignored_and_case_is_forgiven() {
        let c = parse(
            "\u{feff}{\"UserConfig\":{\"Future\":[1,2],\"NamespaceConfig\":[{\"Type\":\"EventHub\",\
             \"Name\":\"emulatorNs1\",\"Sku\":\"x\",\"entities\":[{\"Name\":\"eh\",\
             \"partitionCount\":3,\"RetentionHours\":{\"a\":1},\"ConsumerGroups\":[{\"Name\":\"cg\",\
             \"Extra\":true}]}]}],\"LoggingConfig\":{\"Type\":\"Console\"}}}",
        );
        assert_eq!(c.hubs[0].partition_count, 3);
        assert_eq!(c.hubs[0].consumer_groups, vec!["$Default", "cg"]);
        assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
        assert!(
            c.warnings[0].contains("is spelled \"entities\""),
            "{:?}",
            c.warnings
        );
    }

    #[test]
    fn hostile_input_is_bounded() {
        let big = format!("{{\"x\":\"{}\"}}", "a".repeat(MAX_CONFIG_LEN));
        assert_eq!(refuse(&big), ConfigError::TooLarge { len: big.len() });
        // Deep nesting hits serde_json's recursion limit, not the stack.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(matches!(refuse(&deep), ConfigError::Json(_)));
    }

    proptest::proptest! {
        #[test]
        fn random_text_never_panics(s in "\\PC{0,300}") {
            let _ = parse_emulator_config(&s);
        }

        #[test]
        fn random_entities_never_panic(
            name in "[a-zA-Z0-9$._/,-]{0,12}",
            count in proptest::prelude::any::<i64>(),
            cg in "[a-zA-Z0-9$._/-]{0,12}",
        ) {
            let json = with_entity(&format!(
                r#"{{"Name":"{name}","PartitionCount":{count},"ConsumerGroups":[{{"Name":"{cg}"}}]}}"#
            ));
            if let Ok(c) = parse_emulator_config(&json) {
                proptest::prop_assert!(c.hubs[0].partition_count >= 1);
                proptest::prop_assert_eq!(&c.hubs[0].consumer_groups[0], DEFAULT_CONSUMER_GROUP);
            }
        }
    }
}
