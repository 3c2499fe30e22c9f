//! Every service of Agora, in one list: the embedded app, `agora service
//! <name>`, the gateway's routes, `agora services` (and through it
//! `deploy/run-local.sh`) and the tests all derive from [`ALL`]. Adding a
//! service is writing its crate and adding it here.

use agora_cart::CartService;
use agora_catalog::CatalogService;
use agora_identity::IdentityService;
use agora_inventory::InventoryService;
use agora_notification::NotificationService;
use agora_order::OrderService;
use agora_payment::PaymentService;
use agora_platform::db::Migration;
use agora_platform::service::Service;
use agora_platform::transport::QueueSpec;
use agora_platform::{idempotency, outbox, retention};
use agora_shipping::ShippingService;

/// Every service, in start order (identity first: every process verifies
/// tokens with its keys; then the catalog: others ask it prices). A
/// service's place also gives its default port: 8081 onwards.
pub static ALL: [&dyn Service; 8] = [
    &IdentityService,
    &CatalogService,
    &InventoryService,
    &CartService,
    &OrderService,
    &PaymentService,
    &ShippingService,
    &NotificationService,
];

/// The first port of the distributed mode's services, on one machine.
const FIRST_PORT: u16 = 8081;

/// The service called `name`.
pub fn find(name: &str) -> anyhow::Result<&'static dyn Service> {
    ALL.iter()
        .copied()
        .find(|s| s.name() == name)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no service is called `{name}` (one of {})",
                names().join(", ")
            )
        })
}

pub fn names() -> Vec<&'static str> {
    ALL.iter().map(|s| s.name()).collect()
}

/// Where `name` listens by default when every service runs on one machine.
pub fn default_port(name: &str) -> Option<u16> {
    ALL.iter()
        .position(|s| s.name() == name)
        .map(|i| FIRST_PORT + i as u16)
}

/// Where the services are, for a process that calls them (a service its
/// peers, the gateway every service): `--url NAME=URL[,URL…]` (repeatable),
/// else `AGORA_<NAME>_URL` (comma-separated), else the service's default
/// port on this machine.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ServiceUrls {
    /// Base URLs of a service's instances, e.g. `--url order=http://10.0.0.5:8080`.
    #[arg(long = "url", value_name = "NAME=URL[,URL...]")]
    pub urls: Vec<String>,
}

impl ServiceUrls {
    /// The base URLs of `name`'s instances.
    pub fn of(&self, name: &str) -> anyhow::Result<Vec<String>> {
        let given = self.urls.iter().rev().find_map(|u| {
            u.split_once('=')
                .filter(|(n, _)| *n == name)
                .map(|(_, urls)| urls.to_owned())
        });
        let var = format!("AGORA_{}_URL", name.to_ascii_uppercase());
        let listed = given.or_else(|| std::env::var(&var).ok());
        let urls: Vec<String> = listed
            .unwrap_or_default()
            .split(',')
            .map(|u| u.trim().trim_end_matches('/').to_owned())
            .filter(|u| !u.is_empty())
            .collect();
        if !urls.is_empty() {
            return Ok(urls);
        }
        let port = default_port(name)
            .ok_or_else(|| anyhow::anyhow!("no URL given for the {name} service"))?;
        Ok(vec![format!("http://127.0.0.1:{port}")])
    }

    /// The first instance of `name`.
    pub fn first_of(&self, name: &str) -> anyhow::Result<String> {
        Ok(self.of(name)?.remove(0))
    }

    /// Every `--url` names a service.
    pub fn check(&self) -> anyhow::Result<()> {
        for u in &self.urls {
            let (name, _) = u
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--url {u}: expected NAME=URL"))?;
            find(name)?;
        }
        Ok(())
    }
}

/// The services that consume events, and so have queues and dead letters.
pub fn consumer_names() -> Vec<String> {
    ALL.iter()
        .filter(|s| !s.consumes().is_empty())
        .map(|s| s.name().to_owned())
        .collect()
}

/// The services whose queue is bound to `routing_key`.
pub fn consumers_of(routing_key: &str) -> Vec<&'static str> {
    ALL.iter()
        .filter(|s| s.consumes().contains(&routing_key))
        .map(|s| s.name())
        .collect()
}

/// The queues that take what `publisher` emits: each consumer bound to at
/// least one of its events, with all of that consumer's bindings.
pub fn queues_fed_by(publisher: &str) -> Vec<QueueSpec> {
    let emitted = agora_platform::events::routing_keys_emitted_by(publisher);
    ALL.iter()
        .filter(|s| s.consumes().iter().any(|k| emitted.contains(k)))
        .map(|s| QueueSpec::new(s.name(), s.consumes()))
        .collect()
}

/// The platform's tables (outbox and inbox, idempotency keys, retention)
/// and the service's own, in order.
pub fn migrations(service: &dyn Service) -> [&'static [Migration]; 4] {
    [
        outbox::MIGRATIONS,
        idempotency::MIGRATIONS,
        retention::MIGRATIONS,
        service.migrations(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An event no queue is bound to would be published into the void (or,
    /// `mandatory`, never leave its outbox): every event has a consumer.
    #[test]
    fn every_event_is_consumed_by_some_service() {
        for (key, _) in agora_platform::events::event_schemas() {
            assert!(
                ALL.iter().any(|s| s.consumes().contains(&key)),
                "nobody consumes {key}"
            );
        }
    }

    #[test]
    fn a_publisher_declares_the_queues_of_the_consumers_of_its_events() {
        let names = |publisher| -> Vec<String> {
            queues_fed_by(publisher)
                .into_iter()
                .map(|q| q.service)
                .collect()
        };
        assert_eq!(names(agora_catalog::NAME), ["inventory"]);
        assert_eq!(names(agora_cart::NAME), ["order"]);
        assert_eq!(
            names(agora_order::NAME),
            ["inventory", "cart", "payment", "shipping", "notification"]
        );
        assert_eq!(names(agora_notification::NAME), Vec::<String>::new());
        let inventory = &queues_fed_by(agora_catalog::NAME)[0];
        assert_eq!(
            inventory.routing_keys.len(),
            agora_inventory::handlers::ROUTING_KEYS.len()
        );
    }

    #[test]
    fn every_service_owns_its_own_paths_and_its_needs_exist() {
        let mut paths: Vec<&str> = ALL.iter().flat_map(|s| s.paths().iter().copied()).collect();
        let count = paths.len();
        paths.sort_unstable();
        paths.dedup();
        assert_eq!(paths.len(), count, "two services claim one path");
        for service in ALL {
            for need in service.needs() {
                assert!(
                    find(need).is_ok(),
                    "{} needs unknown {need}",
                    service.name()
                );
            }
        }
    }

    #[test]
    fn a_given_url_comes_before_the_default_port() {
        let urls = ServiceUrls {
            urls: vec!["order=http://a:1/, http://b:2".into()],
        };
        assert_eq!(urls.of("order").unwrap(), ["http://a:1", "http://b:2"]);
        assert!(ServiceUrls {
            urls: vec!["nobody=http://a".into()]
        }
        .check()
        .is_err());
    }

    #[test]
    fn default_ports_follow_the_list() {
        assert_eq!(default_port("identity"), Some(8081));
        assert_eq!(default_port("catalog"), Some(8082));
        assert_eq!(default_port("notification"), Some(8088));
        assert_eq!(default_port("nobody"), None);
    }
}
