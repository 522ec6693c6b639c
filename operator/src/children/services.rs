//! The headless Service (stable member DNS names) and the client Service.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::membership::{ADMIN_PORT, CLIENT_PORT, ELECTION_PORT, QUORUM_PORT};

use super::{EnsembleRef, member_selector, metadata};

fn port(name: &str, port: u16) -> ServicePort {
    ServicePort {
        name: Some(name.to_string()),
        port: i32::from(port),
        target_port: Some(IntOrString::Int(i32::from(port))),
        protocol: Some("TCP".to_string()),
        ..ServicePort::default()
    }
}

/// `<name>-headless`: every member's DNS name, published before it is ready (members must
/// find each other to form a quorum at all).
pub fn headless_service(e: &EnsembleRef<'_>) -> Service {
    Service {
        metadata: metadata(e, e.names.headless_service(), "headless"),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_string()),
            publish_not_ready_addresses: Some(true),
            selector: Some(member_selector(e.names)),
            ports: Some(vec![
                port("client", CLIENT_PORT),
                port("quorum", QUORUM_PORT),
                port("election", ELECTION_PORT),
                port("admin", ADMIN_PORT),
            ]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// `<name>-client`: the ready members' client port.
pub fn client_service(e: &EnsembleRef<'_>) -> Service {
    Service {
        metadata: metadata(e, e.names.client_service(), "client"),
        spec: Some(ServiceSpec {
            selector: Some(member_selector(e.names)),
            ports: Some(vec![port("client", CLIENT_PORT)]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}
