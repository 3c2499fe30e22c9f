//! The build script of every crate whose tests talk to the real servers:
//! those tests are compiled with `cfg(agora_servers)` only when
//! `AGORA_TEST_DATABASE_URL` and `AGORA_TEST_AMQP_URL` name the servers, and
//! are reported as ignored otherwise (never as passed). With
//! `AGORA_REQUIRE_SERVERS=1` (CI) a missing server name fails the build.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(agora_servers)");
    for var in [
        "AGORA_TEST_DATABASE_URL",
        "AGORA_TEST_AMQP_URL",
        "AGORA_REQUIRE_SERVERS",
    ] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    let named = |var| std::env::var(var).is_ok_and(|v| !v.is_empty());
    if named("AGORA_TEST_DATABASE_URL") && named("AGORA_TEST_AMQP_URL") {
        println!("cargo::rustc-cfg=agora_servers");
    } else if std::env::var("AGORA_REQUIRE_SERVERS").is_ok_and(|v| v == "1") {
        panic!(
            "AGORA_REQUIRE_SERVERS=1 but AGORA_TEST_DATABASE_URL or AGORA_TEST_AMQP_URL is not set"
        );
    }
}
