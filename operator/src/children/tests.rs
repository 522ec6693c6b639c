use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::EnvVar;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::*;
use crate::crd::{AntiAffinity, RESTART_ANNOTATION, ReclaimPolicy, ZkEnsembleSpec};
use crate::membership::{EnsembleNames, initial_dynamic_config};

fn owner() -> OwnerReference {
    OwnerReference {
        api_version: "paddock.dev/v1alpha1".into(),
        kind: "ZkEnsemble".into(),
        name: "zk".into(),
        uid: "uid-1".into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn with<R>(spec: ZkEnsembleSpec, f: impl FnOnce(&EnsembleRef<'_>) -> R) -> R {
    with_annotations(spec, BTreeMap::new(), f)
}

fn with_annotations<R>(
    spec: ZkEnsembleSpec,
    annotations: BTreeMap<String, String>,
    f: impl FnOnce(&EnsembleRef<'_>) -> R,
) -> R {
    let names = EnsembleNames::new("zk", "prod");
    let e = EnsembleRef {
        names: &names,
        spec: &spec,
        annotations: &annotations,
        owner: owner(),
    };
    f(&e)
}

fn assert_child_meta(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    name: &str,
    component: &str,
) {
    assert_eq!(meta.name.as_deref(), Some(name));
    assert_eq!(meta.namespace.as_deref(), Some("prod"));
    let l = meta.labels.as_ref().unwrap();
    assert_eq!(l[LABEL_NAME], "paddock");
    assert_eq!(l[LABEL_INSTANCE], "zk");
    assert_eq!(l[LABEL_COMPONENT], component);
    assert_eq!(l[LABEL_MANAGED_BY], "paddock-operator");
    assert_eq!(meta.owner_references.as_ref().unwrap(), &vec![owner()]);
}

#[test]
fn every_child_has_the_recommended_labels_and_a_controller_owner() {
    with(ZkEnsembleSpec::default(), |e| {
        assert_child_meta(&config_map(e, "").metadata, "zk-config", "config");
        assert_child_meta(&headless_service(e).metadata, "zk-headless", "headless");
        assert_child_meta(&client_service(e).metadata, "zk-client", "client");
        assert_child_meta(
            &credentials_secret(e, "pw").metadata,
            "zk-credentials",
            "credentials",
        );
        assert_child_meta(&stateful_set(e, 3).metadata, "zk", "server");
        assert_child_meta(&pod_disruption_budget(e).unwrap().metadata, "zk", "pdb");
    });
}

#[test]
fn zoo_cfg_has_the_settings_the_owned_keys_and_the_initial_members() {
    let mut spec = ZkEnsembleSpec::default();
    spec.config.tick_time = 500;
    spec.config.max_session_timeout = Some(30000);
    spec.config
        .extra
        .insert("maxClientCnxns".into(), "100".into());
    let names = EnsembleNames::new("zk", "prod");
    let servers = initial_dynamic_config(&names, 3, 0);
    let cfg = zoo_cfg(&spec, &servers);
    for line in [
        "tickTime=500",
        "initLimit=10",
        "syncLimit=5",
        "maxSessionTimeout=30000",
        "snapCount=100000",
        "autopurge.snapRetainCount=3",
        "autopurge.purgeInterval=1",
        "dataDir=/data",
        "clientPort=2181",
        "admin.serverPort=8080",
        "reconfigEnabled=true",
        "standaloneEnabled=false",
        "4lw.commands.whitelist=*",
        "maxClientCnxns=100",
        "server.1=zk-0.zk-headless.prod.svc.cluster.local:2888:3888:participant;0.0.0.0:2181",
        "server.3=zk-2.zk-headless.prod.svc.cluster.local:2888:3888:participant;0.0.0.0:2181",
    ] {
        assert!(cfg.lines().any(|l| l == line), "{line} missing from\n{cfg}");
    }
    assert!(!cfg.contains("minSessionTimeout"));
    assert_eq!(initial_servers_of(&cfg), servers);
}

#[test]
fn the_config_hash_follows_settings_but_not_membership() {
    let spec = ZkEnsembleSpec::default();
    let hash = |spec: &ZkEnsembleSpec| {
        with(spec.clone(), |e| {
            stateful_set(e, 3)
                .spec
                .unwrap()
                .template
                .metadata
                .unwrap()
                .annotations
                .unwrap()[CONFIG_HASH_ANNOTATION]
                .clone()
        })
    };
    let mut more = spec.clone();
    more.replicas = 5;
    assert_eq!(hash(&spec), hash(&more));
    let mut changed = spec.clone();
    changed.config.sync_limit = 7;
    assert_ne!(hash(&spec), hash(&changed));
}

#[test]
fn the_digest_is_zookeepers_super_digest() {
    // `echo -n super:secret | sha1sum | xxd -r -p | base64`
    assert_eq!(super_digest("secret"), "super:lK75jTNcA+U9vtVEw5vB51mj/w4=");
    let a = generate_password().unwrap();
    let b = generate_password().unwrap();
    assert_ne!(a, b);
    assert!(a.len() >= 40);
}

#[test]
fn services_publish_the_member_ports() {
    with(ZkEnsembleSpec::default(), |e| {
        let h = headless_service(e).spec.unwrap();
        assert_eq!(h.cluster_ip.as_deref(), Some("None"));
        assert_eq!(h.publish_not_ready_addresses, Some(true));
        let ports: Vec<i32> = h.ports.unwrap().iter().map(|p| p.port).collect();
        assert_eq!(ports, vec![2181, 2888, 3888, 8080]);
        let c = client_service(e).spec.unwrap();
        assert_eq!(c.cluster_ip, None);
        let ports: Vec<i32> = c.ports.unwrap().iter().map(|p| p.port).collect();
        assert_eq!(ports, vec![2181]);
        assert_eq!(c.selector, h.selector);
        assert_eq!(c.selector.unwrap()[LABEL_COMPONENT], "server");
    });
}

#[test]
fn the_server_container_has_the_args_env_and_probes() {
    let mut spec = ZkEnsembleSpec {
        image: "paddock/server:test".into(),
        ..ZkEnsembleSpec::default()
    };
    spec.pod.env.push(EnvVar {
        name: "RUST_LOG".into(),
        value: Some("debug".into()),
        ..EnvVar::default()
    });
    spec.pod.env.push(EnvVar {
        name: "POD_IP".into(),
        value: Some("spoofed".into()),
        ..EnvVar::default()
    });
    let sts = with(spec, |e| stateful_set(e, 3));
    let s = sts.spec.unwrap();
    assert_eq!(s.replicas, Some(3));
    assert_eq!(s.service_name.as_deref(), Some("zk-headless"));
    assert_eq!(s.pod_management_policy.as_deref(), Some("Parallel"));
    assert_eq!(
        s.update_strategy.unwrap().type_.as_deref(),
        Some("OnDelete")
    );
    let pod = s.template.spec.unwrap();
    let c = &pod.containers[0];
    assert_eq!(c.name, "server");
    assert_eq!(c.image.as_deref(), Some("paddock/server:test"));
    assert_eq!(
        c.args.as_ref().unwrap().join(" "),
        "--config /conf/zoo.cfg --data-dir /data --myid-from-hostname \
         --client-address $(POD_IP) --admin-address $(POD_IP) \
         --peer-address $(POD_NAME).zk-headless.prod.svc.cluster.local \
         --join zk-client.prod.svc.cluster.local:2181"
    );
    let env = c.env.as_ref().unwrap();
    let names: Vec<&str> = env.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(
        names,
        vec!["POD_IP", "POD_NAME", "PADDOCK_SUPER_DIGEST", "RUST_LOG"]
    );
    let field = |i: usize| {
        env[i]
            .value_from
            .as_ref()
            .unwrap()
            .field_ref
            .as_ref()
            .unwrap()
            .field_path
            .clone()
    };
    assert_eq!(field(0), "status.podIP");
    assert_eq!(field(1), "metadata.name");
    let secret = env[2]
        .value_from
        .as_ref()
        .unwrap()
        .secret_key_ref
        .as_ref()
        .unwrap();
    assert_eq!(secret.name, "zk-credentials");
    assert_eq!(secret.key, DIGEST_KEY);
    let path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        let g = p.as_ref().unwrap().http_get.as_ref().unwrap();
        (g.path.clone().unwrap(), g.port.clone())
    };
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    assert_eq!(
        path(&c.readiness_probe),
        ("/readyz".into(), IntOrString::Int(8080))
    );
    assert_eq!(c.readiness_probe.as_ref().unwrap().period_seconds, Some(2));
    assert_eq!(path(&c.liveness_probe).0, "/livez");
    assert_eq!(path(&c.startup_probe).0, "/livez");
    assert_eq!(pod.termination_grace_period_seconds, Some(60));
}

#[test]
fn members_run_as_the_images_non_root_user_unless_the_spec_says_otherwise() {
    let sts = with(ZkEnsembleSpec::default(), |e| stateful_set(e, 3));
    let pod = sts.spec.unwrap().template.spec.unwrap();
    let ctx = pod.security_context.unwrap();
    assert_eq!(ctx.run_as_non_root, Some(true));
    assert_eq!(ctx.run_as_user, Some(65532));
    assert_eq!(ctx.run_as_group, Some(65532));
    assert_eq!(
        ctx.fs_group,
        Some(65532),
        "the data volume must be writable"
    );
    assert_eq!(ctx.seccomp_profile.unwrap().type_, "RuntimeDefault");
    let c = pod.containers[0].security_context.clone().unwrap();
    assert_eq!(c.allow_privilege_escalation, Some(false));
    assert_eq!(c.read_only_root_filesystem, Some(true));
    assert_eq!(c.capabilities.unwrap().drop, Some(vec!["ALL".to_string()]));

    let mut spec = ZkEnsembleSpec::default();
    spec.pod.security_context = Some(k8s_openapi::api::core::v1::PodSecurityContext {
        run_as_user: Some(1000),
        fs_group: Some(1000),
        ..Default::default()
    });
    let sts = with(spec, |e| stateful_set(e, 3));
    let ctx = sts
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .security_context
        .unwrap();
    assert_eq!((ctx.run_as_user, ctx.fs_group), (Some(1000), Some(1000)));
    assert_eq!(
        ctx.run_as_non_root, None,
        "the user's context replaces the default whole"
    );
}

#[test]
fn storage_is_a_claim_template_or_an_empty_dir() {
    let mut spec = ZkEnsembleSpec::default();
    spec.storage.reclaim_policy = ReclaimPolicy::Delete;
    spec.storage.storage_class_name = Some("fast".into());
    let s = with(spec.clone(), |e| stateful_set(e, 3)).spec.unwrap();
    let claims = s.volume_claim_templates.unwrap();
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0].metadata.name.as_deref(), Some("data"));
    let cs = claims[0].spec.as_ref().unwrap();
    assert_eq!(cs.storage_class_name.as_deref(), Some("fast"));
    assert_eq!(
        cs.resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"].0,
        "10Gi"
    );
    let retention = s.persistent_volume_claim_retention_policy.unwrap();
    assert_eq!(retention.when_deleted.as_deref(), Some("Delete"));
    assert_eq!(retention.when_scaled.as_deref(), Some("Retain"));

    spec.storage.ephemeral = true;
    let s = with(spec, |e| stateful_set(e, 3)).spec.unwrap();
    assert!(s.volume_claim_templates.is_none());
    let volumes = s.template.spec.unwrap().volumes.unwrap();
    let data = volumes.iter().find(|v| v.name == "data").unwrap();
    assert!(data.empty_dir.is_some());
}

#[test]
fn pod_template_carries_spec_pod_and_the_restart_annotation() {
    let mut spec = ZkEnsembleSpec::default();
    spec.pod.labels.insert("team".into(), "a".into());
    spec.pod
        .labels
        .insert(LABEL_INSTANCE.into(), "spoofed".into());
    spec.pod.annotations.insert("note".into(), "x".into());
    spec.pod.node_selector.insert("disk".into(), "ssd".into());
    spec.pod.priority_class_name = Some("high".into());
    let annotations = BTreeMap::from([(RESTART_ANNOTATION.to_string(), "t1".to_string())]);
    let s = with_annotations(spec, annotations, |e| stateful_set(e, 3))
        .spec
        .unwrap();
    let meta = s.template.metadata.unwrap();
    let labels = meta.labels.unwrap();
    assert_eq!(labels["team"], "a");
    assert_eq!(labels[LABEL_INSTANCE], "zk");
    let annotations = meta.annotations.unwrap();
    assert_eq!(annotations["note"], "x");
    assert_eq!(annotations[RESTART_ANNOTATION], "t1");
    let pod = s.template.spec.unwrap();
    assert_eq!(pod.node_selector.unwrap()["disk"], "ssd");
    assert_eq!(pod.priority_class_name.as_deref(), Some("high"));
    // The selector is the immutable subset of the labels.
    let selector = s.selector.match_labels.unwrap();
    assert!(selector.iter().all(|(k, v)| labels[k] == *v));
}

#[test]
fn anti_affinity_soft_hard_none() {
    let affinity = |mode| {
        let spec = ZkEnsembleSpec {
            anti_affinity: mode,
            ..ZkEnsembleSpec::default()
        };
        with(spec, |e| stateful_set(e, 3))
            .spec
            .unwrap()
            .template
            .spec
            .unwrap()
            .affinity
    };
    let soft = affinity(AntiAffinity::Soft)
        .unwrap()
        .pod_anti_affinity
        .unwrap();
    let term = &soft
        .preferred_during_scheduling_ignored_during_execution
        .unwrap()[0];
    assert_eq!(
        term.pod_affinity_term.topology_key,
        "kubernetes.io/hostname"
    );
    let hard = affinity(AntiAffinity::Hard)
        .unwrap()
        .pod_anti_affinity
        .unwrap();
    assert_eq!(
        hard.required_during_scheduling_ignored_during_execution
            .unwrap()[0]
            .topology_key,
        "kubernetes.io/hostname"
    );
    assert!(affinity(AntiAffinity::None).is_none());
}

#[test]
fn pdb_and_service_monitor_follow_the_spec() {
    let mut spec = ZkEnsembleSpec::default();
    let pdb = with(spec.clone(), pod_disruption_budget).unwrap();
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    assert_eq!(pdb.spec.unwrap().max_unavailable, Some(IntOrString::Int(1)));
    assert!(with(spec.clone(), service_monitor).is_none());
    spec.pdb.enabled = false;
    spec.metrics.service_monitor = true;
    assert!(with(spec.clone(), pod_disruption_budget).is_none());
    let sm = with(spec, service_monitor).unwrap();
    assert_eq!(sm["kind"], "ServiceMonitor");
    assert_eq!(sm["metadata"]["ownerReferences"][0]["uid"], "uid-1");
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "admin");
}

#[test]
fn an_existing_statefulset_keeps_its_claim_templates_whatever_the_size() {
    let request = |s: &k8s_openapi::api::apps::v1::StatefulSet| {
        s.spec
            .as_ref()
            .unwrap()
            .volume_claim_templates
            .as_ref()
            .unwrap()[0]
            .spec
            .as_ref()
            .unwrap()
            .resources
            .as_ref()
            .unwrap()
            .requests
            .as_ref()
            .unwrap()["storage"]
            .0
            .clone()
    };
    let sized = |size: &str| {
        let mut spec = ZkEnsembleSpec::default();
        spec.storage.size = Quantity(size.into());
        spec
    };
    let existing = with(sized("1Gi"), |e| {
        stateful_set(e, 3).spec.unwrap().volume_claim_templates
    });
    with(sized("2Gi"), |e| {
        let kept = keep_claim_templates(stateful_set(e, 3), Some(existing.clone()));
        assert_eq!(request(&kept), "1Gi");
        let created = keep_claim_templates(stateful_set(e, 3), None);
        assert_eq!(request(&created), "2Gi");
    });
}
