//! The emulator repository's own sample configs (tests/fixtures/README.md says where from).

use runnel_amqp::emulator_config::{parse_emulator_config, EmulatorConfig, HubConfig};

fn read(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_emulators_sample_config_parses_without_warnings() {
    let config = parse_emulator_config(&read("emulator-Config.json")).expect("sample config");
    assert_eq!(
        config,
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
fn the_spring_boot_samples_string_partition_count_is_a_warning() {
    let config = parse_emulator_config(&read("emulator-spring-boot-config.json")).expect("sample");
    assert_eq!(config.hubs[0].partition_count, 2);
    assert_eq!(
        config.warnings,
        vec![
            "UserConfig.NamespaceConfig[0].Entities[0].PartitionCount is the string \"2\"; \
             the schema wants a number"
                .to_string()
        ]
    );
}
