//! The group coordinator's settings, read from the broker's checked settings (the
//! coordinator crate knows no settings catalog).

use runnel_coordinator::group::classic::ClassicLimits;
use runnel_coordinator::group::consumer::ConsumerConfig;
use runnel_coordinator::group::GroupConfig;
use runnel_core::config::ConfigError;
use runnel_core::settings::Settings;

/// The group coordinator's settings. The catalog checked each value, and the broker's
/// config the heartbeat against the session timeout.
pub fn group_config(s: &Settings) -> Result<GroupConfig, ConfigError> {
    let d = GroupConfig::default();
    let consumer = ConsumerConfig {
        heartbeat_interval_ms: s.int("group.consumer.heartbeat.interval.ms")?,
        session_timeout_ms: s.int("group.consumer.session.timeout.ms")?,
        assignors: s.list("group.consumer.assignors")?.to_vec(),
        max_size: s.int("group.consumer.max.size")?,
        regex_refresh_interval_ms: s.int("group.consumer.regex.refresh.interval.ms")?,
    };
    Ok(GroupConfig {
        classic: ClassicLimits {
            min_session_timeout_ms: s.int("group.min.session.timeout.ms")?,
            max_session_timeout_ms: s.int("group.max.session.timeout.ms")?,
            initial_rebalance_delay_ms: s.int("group.initial.rebalance.delay.ms")?,
            max_size: s.int("group.max.size")?,
            new_member_join_timeout_ms: d.classic.new_member_join_timeout_ms,
        },
        consumer,
        max_groups: s.int("group.coordinator.max.groups")?,
        offsets_partitions: s.int("offsets.topic.num.partitions")?,
        offset_metadata_max_bytes: s.int("offset.metadata.max.bytes")?,
        offsets_retention_ms: s
            .int::<i64>("offsets.retention.minutes")?
            .saturating_mul(60_000),
        offsets_retention_check_interval_ms: s.int("offsets.retention.check.interval.ms")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group_settings(pairs: &[(&str, &str)]) -> Result<GroupConfig, ConfigError> {
        let given = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        group_config(&Settings::parse(&given)?)
    }

    #[test]
    fn settings_defaults_are_the_built_in_ones() {
        let from_catalog = group_settings(&[]).unwrap();
        assert_eq!(
            format!("{from_catalog:?}"),
            format!("{:?}", GroupConfig::default())
        );
        let c = group_settings(&[
            ("group.min.session.timeout.ms", "1000"),
            ("group.initial.rebalance.delay.ms", "0"),
            ("group.consumer.assignors", "range"),
            ("offsets.topic.num.partitions", "5"),
            ("offsets.retention.minutes", "2"),
        ])
        .unwrap();
        assert_eq!(c.classic.min_session_timeout_ms, 1000);
        assert_eq!(c.classic.initial_rebalance_delay_ms, 0);
        assert_eq!(c.consumer.assignors, vec!["range".to_string()]);
        assert_eq!(c.offsets_partitions, 5);
        assert_eq!(c.offsets_retention_ms, 120_000);
    }

    /// Each of these used to fall back to the default (or be clamped) with at most a
    /// log line; now the broker refuses to start, naming the setting.
    #[test]
    fn bad_group_settings_refuse_naming_the_setting() {
        for (name, bad) in [
            ("group.min.session.timeout.ms", "abc"),
            ("group.max.session.timeout.ms", "30m"),
            ("group.initial.rebalance.delay.ms", "-1"),
            ("group.max.size", "0"),
            ("group.consumer.heartbeat.interval.ms", "0"),
            ("group.consumer.session.timeout.ms", "4.5"),
            ("group.consumer.assignors", "roundrobin"),
            ("group.consumer.assignors", ""),
            ("group.consumer.max.size", "0"),
            ("group.consumer.regex.refresh.interval.ms", "0"),
            ("group.coordinator.max.groups", "0"),
            ("offsets.topic.num.partitions", "0"),
            ("offsets.topic.num.partitions", "20000"),
            ("offset.metadata.max.bytes", "-1"),
            ("offsets.retention.minutes", "0"),
            ("offsets.retention.check.interval.ms", "0"),
        ] {
            let err = group_settings(&[(name, bad)]).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("invalid value {bad:?} for {name}: expected ")),
                "{name}={bad}: {err}"
            );
        }
    }

    /// The catalog's assignor names are the coordinator's.
    #[test]
    fn the_catalog_knows_the_coordinators_assignors() {
        use runnel_coordinator::group::assignor::{RANGE, UNIFORM};
        assert_eq!(runnel_core::settings::ASSIGNORS, [UNIFORM, RANGE]);
    }
}
