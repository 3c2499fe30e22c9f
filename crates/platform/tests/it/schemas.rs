//! The committed JSON Schemas (`schemas/`) and the Rust event types must not
//! drift apart. `AGORA_BLESS=1 cargo test -p agora-platform --test schemas`
//! rewrites the files after an intended change.

use std::path::PathBuf;

use agora_platform::events::{
    envelope_schema, event_schemas, schema_file, schema_path, ENVELOPE_SCHEMA_PATH,
};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn check(path: PathBuf, schema: &schemars::Schema, drifted: &mut Vec<String>) {
    let generated = schema_file(schema);
    if std::env::var("AGORA_BLESS").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    match std::fs::read_to_string(&path) {
        Ok(committed) if committed == generated => {}
        Ok(_) => drifted.push(format!("{} differs from its Rust type", path.display())),
        Err(_) => drifted.push(format!("{} is missing", path.display())),
    }
}

#[test]
fn committed_schemas_match_the_event_types() {
    let mut drifted = Vec::new();
    for (routing_key, schema) in event_schemas() {
        check(
            repo_root().join(schema_path(routing_key)),
            &schema,
            &mut drifted,
        );
    }
    check(
        repo_root().join(ENVELOPE_SCHEMA_PATH),
        &envelope_schema(),
        &mut drifted,
    );
    assert!(
        drifted.is_empty(),
        "schemas drifted (AGORA_BLESS=1 to rewrite):\n{}",
        drifted.join("\n")
    );
}

#[test]
fn there_is_no_stray_schema_file() {
    let dir = repo_root().join("schemas/events");
    let known: Vec<String> = event_schemas()
        .iter()
        .map(|(k, _)| format!("{k}.json"))
        .collect();
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            known.contains(&name),
            "schemas/events/{name} has no event type"
        );
    }
}
