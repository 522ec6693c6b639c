//! The CRD as the API server will see it: in sync with crds/, structural, and its CEL rules
//! refusing what the planner cannot honour (evaluated client-side with kube's CEL engine).

use kube::CustomResourceExt;
use kube::core::cel::{Validator, compile_schema};
use serde_json::{Value, json};

use super::*;

const CHECKED_IN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../crds/zkensembles.paddock.dev.yaml"
);

fn schema() -> Value {
    let crd = ZkEnsemble::crd();
    let version = &crd.spec.versions[0];
    let schema = version
        .schema
        .as_ref()
        .unwrap()
        .open_api_v3_schema
        .as_ref()
        .unwrap();
    serde_json::to_value(schema).unwrap()
}

/// The chart ships its own copy (Helm installs only what is in the chart's crds/ folder).
const IN_CHART: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../charts/paddock/crds/zkensembles.paddock.dev.yaml"
);

#[test]
fn checked_in_crd_matches_the_types() {
    let generated = crd_yaml().unwrap();
    for (path, name) in [
        (CHECKED_IN, "crds/zkensembles.paddock.dev.yaml"),
        (IN_CHART, "charts/paddock/crds/zkensembles.paddock.dev.yaml"),
    ] {
        let on_disk =
            std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{name} cannot be read: {e}"));
        assert!(
            on_disk == generated,
            "{name} differs from what the types generate; regenerate it with\n  \
             cargo run -p paddock-operator -- crd | tee crds/zkensembles.paddock.dev.yaml \
             charts/paddock/crds/zkensembles.paddock.dev.yaml > /dev/null\n\
             (and bash deploy/generate.sh)"
        );
    }
}

#[test]
fn crd_names_scope_and_subresources() {
    let crd = ZkEnsemble::crd();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("zkensembles.paddock.dev")
    );
    assert_eq!(crd.spec.group, "paddock.dev");
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.short_names, Some(vec!["zke".to_string()]));
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    assert!(version.subresources.as_ref().unwrap().status.is_some());
    let columns: Vec<&str> = version
        .additional_printer_columns
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(columns, ["Replicas", "Ready", "Leader", "Phase", "Age"]);
}

/// Keywords a structural schema may hold (apiextensions JSONSchemaProps, minus those the API
/// server refuses in structural schemas: $ref, anyOf/oneOf/allOf/not outside value validation,
/// definitions, patternProperties, dependencies, additionalItems, uniqueItems: true).
const ALLOWED_KEYWORDS: &[&str] = &[
    "type",
    "format",
    "description",
    "title",
    "properties",
    "required",
    "items",
    "additionalProperties",
    "enum",
    "default",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "nullable",
    "example",
    "x-kubernetes-int-or-string",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "x-kubernetes-validations",
];

/// Walks every schema node and collects what makes a schema non-structural.
fn structural_problems(node: &Value, path: &str, out: &mut Vec<String>) {
    let Some(obj) = node.as_object() else {
        out.push(format!("{path}: schema is not an object"));
        return;
    };
    for key in obj.keys() {
        if !ALLOWED_KEYWORDS.contains(&key.as_str()) {
            out.push(format!("{path}: keyword {key} is not allowed"));
        }
    }
    let open = obj.get("x-kubernetes-int-or-string") == Some(&json!(true))
        || obj.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true));
    if !obj.contains_key("type") && !open {
        out.push(format!("{path}: no type"));
    }
    if obj.contains_key("x-kubernetes-int-or-string") && obj.contains_key("type") {
        out.push(format!("{path}: int-or-string must not also set type"));
    }
    if obj.contains_key("properties") && obj.contains_key("additionalProperties") {
        out.push(format!(
            "{path}: properties and additionalProperties together"
        ));
    }
    if let Some(Value::Array(_)) = obj.get("type") {
        out.push(format!("{path}: type must be a single string"));
    }
    if obj.get("type") == Some(&json!("array")) && !obj.contains_key("items") {
        out.push(format!("{path}: array without items"));
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (name, sub) in props {
            structural_problems(sub, &format!("{path}.{name}"), out);
        }
    }
    if let Some(items) = obj.get("items") {
        structural_problems(items, &format!("{path}[]"), out);
    }
    if let Some(extra) = obj.get("additionalProperties")
        && extra.is_object()
    {
        structural_problems(extra, &format!("{path}{{}}"), out);
    }
    if let Some(rules) = obj
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
    {
        for rule in rules {
            if rule.get("rule").and_then(Value::as_str).is_none()
                || rule.get("message").and_then(Value::as_str).is_none()
            {
                out.push(format!("{path}: a CEL rule without rule or message"));
            }
        }
    }
}

#[test]
fn schema_is_structural() {
    let mut problems = Vec::new();
    structural_problems(&schema(), "", &mut problems);
    assert!(
        problems.is_empty(),
        "non-structural schema:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_structural_check_catches_the_usual_schemars_pitfalls() {
    let bad = json!({
        "type": "object",
        "properties": {
            "a": {"$ref": "#/definitions/A"},
            "b": {"anyOf": [{"type": "string"}, {"enum": [null], "nullable": true}]},
            "c": {"type": ["string", "null"]},
            "d": {"type": "array"}
        }
    });
    let mut problems = Vec::new();
    structural_problems(&bad, "", &mut problems);
    let text = problems.join("\n");
    for want in [
        ".a: keyword $ref",
        ".b: keyword anyOf",
        ".b: no type",
        ".c: type must be",
        ".d: array without",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
}

/// Finds the schema node at a dotted path of property names.
fn node<'a>(schema: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(schema, |n, p| &n["properties"][p])
}

#[test]
fn quantities_and_embedded_kubernetes_types_have_kubernetes_shapes() {
    let s = schema();
    let spec = node(&s, "spec");
    // Storage size: a string CEL can parse with quantity().
    assert_eq!(node(spec, "storage.size")["type"], "string");
    // Resource quantities from k8s-openapi: int-or-string, as in core types.
    let limits = &node(spec, "resources.limits")["additionalProperties"];
    assert_eq!(limits["x-kubernetes-int-or-string"], true, "{limits}");
    // Embedded core types carry full schemas (so kubectl explain and validation work).
    assert!(node(spec, "pod.affinity.nodeAffinity").is_object());
    assert_eq!(
        node(spec, "pod.tolerations")["items"]["properties"]["key"]["type"],
        "string"
    );
    let tsc = &node(spec, "pod.topologySpreadConstraints")["items"]["properties"];
    assert_eq!(tsc["maxSkew"]["type"], "integer");
    assert_eq!(
        node(spec, "pod.env")["items"]["properties"]["name"]["type"],
        "string"
    );
    // Status times are date-time strings.
    let cond = &node(&s, "status.conditions")["items"]["properties"];
    assert_eq!(cond["lastTransitionTime"]["format"], "date-time");
}

#[test]
fn every_field_has_a_description() {
    fn walk(n: &Value, path: &str, out: &mut Vec<String>) {
        if let Some(props) = n.get("properties").and_then(Value::as_object) {
            for (name, sub) in props {
                let p = format!("{path}.{name}");
                if sub.get("description").is_none() {
                    out.push(p.clone());
                }
                walk(sub, &p, out);
            }
        }
    }
    let s = schema();
    let mut missing = Vec::new();
    // Our own types; embedded core types carry k8s-openapi's descriptions.
    walk(node(&s, "spec"), "spec", &mut missing);
    walk(node(&s, "status"), "status", &mut missing);
    missing.retain(|p| !p.starts_with("spec.pod.") || p.matches('.').count() == 2);
    missing
        .retain(|p| !p.starts_with("spec.resources.") && !p.starts_with("spec.imagePullSecrets."));
    assert!(
        missing.is_empty(),
        "fields without a description: {missing:?}"
    );
}

#[test]
fn defaults_are_in_the_schema() {
    let s = schema();
    let spec = node(&s, "spec");
    assert_eq!(node(spec, "replicas")["default"], 3);
    assert_eq!(node(spec, "image")["default"], DEFAULT_IMAGE);
    assert!(DEFAULT_IMAGE.starts_with("paddock/server:"));
    assert_eq!(node(spec, "storage")["default"]["size"], "10Gi");
    assert_eq!(node(spec, "storage.reclaimPolicy")["default"], "Retain");
    assert_eq!(node(spec, "config.tickTime")["default"], 2000);
    assert_eq!(node(spec, "antiAffinity")["default"], "Soft");
    assert_eq!(node(spec, "pdb.enabled")["default"], true);
}

#[test]
fn every_cel_rule_compiles() {
    let compiled = compile_schema(&schema());
    assert!(
        !compiled.has_errors(),
        "{:?}",
        compiled.compilation_errors()
    );
}

fn object(spec: Value) -> Value {
    json!({
        "apiVersion": "paddock.dev/v1alpha1",
        "kind": "ZkEnsemble",
        "metadata": {"name": "zk", "namespace": "default"},
        "spec": spec,
    })
}

/// Messages of the rules the API server would fail for this create or update.
fn refusals(spec: Value, old: Option<Value>) -> Vec<String> {
    let old = old.map(object);
    match Validator::new().validate(&schema(), &object(spec), old.as_ref()) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.iter().map(|e| e.message.clone()).collect(),
    }
}

fn refused_with(spec: Value, old: Option<Value>, words: &str) {
    let got = refusals(spec, old);
    assert!(
        got.iter().any(|m| m.contains(words)),
        "expected a refusal mentioning {words:?}, got {got:?}"
    );
}

#[test]
fn a_plain_spec_and_the_defaults_pass() {
    assert_eq!(refusals(json!({}), None), Vec::<String>::new());
    let full = serde_json::to_value(ZkEnsembleSpec::default()).unwrap();
    assert_eq!(refusals(full.clone(), Some(full)), Vec::<String>::new());
    let grown = json!({"replicas": 5, "observers": 2, "storage": {"size": "20Gi"},
        "config": {"extra": {"4lw.commands.whitelist": "*"}}});
    assert_eq!(
        refusals(grown, Some(json!({"storage": {"size": "10Gi"}}))),
        Vec::<String>::new()
    );
}

#[test]
fn replicas_out_of_range_are_refused() {
    refused_with(json!({"replicas": 0}), None, "between 1 and 15");
    refused_with(json!({"replicas": 16}), None, "between 1 and 15");
}

#[test]
fn observers_without_voters_are_refused() {
    refused_with(
        json!({"replicas": 2, "observers": 2}),
        None,
        "at least one voter",
    );
}

#[test]
fn shrinking_storage_is_refused_growing_is_not() {
    let old = json!({"storage": {"size": "10Gi"}});
    refused_with(
        json!({"storage": {"size": "5Gi"}}),
        Some(old.clone()),
        "cannot shrink",
    );
    // Same size in other units is not a shrink.
    assert!(refusals(json!({"storage": {"size": "10240Mi"}}), Some(old)).is_empty());
    refused_with(json!({"storage": {"size": "ten gigs"}}), None, "quantity");
}

#[test]
fn storage_class_and_ephemeral_are_immutable() {
    let old = json!({"storage": {"storageClassName": "fast"}});
    refused_with(
        json!({"storage": {"storageClassName": "slow"}}),
        Some(old.clone()),
        "storageClassName cannot change",
    );
    refused_with(
        json!({"storage": {}}),
        Some(old),
        "storageClassName cannot change",
    );
    refused_with(
        json!({"storage": {"ephemeral": true}}),
        Some(json!({})),
        "ephemeral cannot change",
    );
}

#[test]
fn operator_owned_zoo_cfg_keys_are_refused_in_extra() {
    for key in OPERATOR_OWNED_KEYS {
        refused_with(
            json!({"config": {"extra": {*key: "x"}}}),
            None,
            "the operator writes these itself",
        );
    }
    for key in ["server.1", "group.2", "weight.3"] {
        refused_with(
            json!({"config": {"extra": {key: "x"}}}),
            None,
            "owns the membership",
        );
    }
    for key in TYPED_KEYS {
        refused_with(
            json!({"config": {"extra": {*key: "1"}}}),
            None,
            "their own fields",
        );
    }
    for prefix in OPERATOR_OWNED_PREFIXES {
        assert!(prefix.ends_with('.'));
    }
}

#[test]
fn session_timeouts_must_be_ordered() {
    refused_with(
        json!({"config": {"minSessionTimeout": 9000, "maxSessionTimeout": 4000}}),
        None,
        "must not exceed",
    );
}

#[test]
fn spec_round_trips_and_defaults_fill_in() {
    let spec: ZkEnsembleSpec = serde_json::from_value(json!({"replicas": 5})).unwrap();
    assert_eq!(spec.replicas, 5);
    assert_eq!(spec.image, DEFAULT_IMAGE);
    assert_eq!(spec.storage.size.0, "10Gi");
    assert_eq!(spec.voters(), 5);
    let back: ZkEnsembleSpec =
        serde_json::from_value(serde_json::to_value(&spec).unwrap()).unwrap();
    assert_eq!(back, spec);
}

#[test]
fn restart_annotation_reaches_the_pod_template() {
    let mut spec = ZkEnsembleSpec::default();
    spec.pod.annotations.insert("team".into(), "a".into());
    let mut cr = std::collections::BTreeMap::new();
    assert_eq!(pod_template_annotations(&spec, &cr).len(), 1);
    cr.insert(
        RESTART_ANNOTATION.to_string(),
        "2025-01-01T00:00:00Z".into(),
    );
    cr.insert("unrelated".into(), "x".into());
    let t = pod_template_annotations(&spec, &cr);
    assert_eq!(
        t.get(RESTART_ANNOTATION).map(String::as_str),
        Some("2025-01-01T00:00:00Z")
    );
    assert!(!t.contains_key("unrelated"));
}
