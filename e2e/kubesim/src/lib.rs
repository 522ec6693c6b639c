//! The test cluster's node agent as a library, so its parts can be tested on their own.

pub mod controlplane;
pub mod dns;
pub mod env;
pub mod faults;
pub mod images;
pub mod kubeconfig;
pub mod layout;
pub mod netblock;
pub mod node;
pub mod pki;
pub mod provisioner;
pub mod runtime;
pub mod supervisor;
pub mod volumes;
