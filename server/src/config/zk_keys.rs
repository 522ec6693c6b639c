//! ZooKeeper settings Paddock does not implement, and what each one means for a start.
//!
//! A zoo.cfg brought over from ZooKeeper may carry settings Paddock has no code for.
//! Ignoring one silently is fine when Paddock always gives its effect anyway (it always
//! fsyncs, always checks ACLs, always serves metrics) or when it only tunes ZooKeeper's
//! internals; those are listed once at info level. It is not fine when ignoring it would
//! leave the server less secure or less durable than the file asks for (TLS,
//! authentication providers, quotas, an audit log): such a key stops the start with a
//! message naming it and saying what to do, until Paddock implements it.
//!
//! Pure: key and value in, verdict out ([`classify`]).

/// What a ZooKeeper key Paddock does not implement means for this start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Ignoring it would weaken security or durability: refuse to start. The text says
    /// what to do.
    Refuse(String),
    /// Without effect; the text says why (Paddock always provides it, or it is tuning).
    NoEffect(&'static str),
}

/// Why a key has no effect.
const ALWAYS_FSYNC: &str = "Paddock always fsyncs a transaction before acknowledging it";
const ALWAYS_ACL: &str = "Paddock always checks ACLs";
const TUNING: &str = "tuning of ZooKeeper's internals; Paddock has its own";
const METRICS: &str = "Paddock always serves Prometheus metrics on the admin port's /metrics";
const GLOBAL_SESSIONS: &str = "Paddock's sessions are always global";
const SINGLE_ADDRESS: &str = "Paddock uses one quorum address per server";
const NO_TLS: &str = "Paddock has no HTTPS on the admin port yet: remove it and keep the \
                     admin port on a private address, or terminate TLS in front of it";
/// Switches that turn TLS on for the admin port (the client and quorum ports' TLS keys
/// are read by `tls_keys`).
const TLS_SWITCHES: [&str; 2] = ["admin.portUnification", "admin.forceHttps"];
/// The providers Paddock always has (digest and ip are built in; x509 is used on TLS
/// connections that present a client certificate).
const BUILT_IN_PROVIDERS: [&str; 3] = [
    "org.apache.zookeeper.server.auth.DigestAuthenticationProvider",
    "org.apache.zookeeper.server.auth.IPAuthenticationProvider",
    "org.apache.zookeeper.server.auth.X509AuthenticationProvider",
];

/// What `key` (without a `zookeeper.` prefix) set to `value` means, or `None` when it
/// is not a ZooKeeper key this table knows (the caller handles it, or keeps it as an
/// unknown key).
pub fn classify(key: &str, value: &str) -> Option<Verdict> {
    let on = is_true(value);
    let refuse = |what: &str| Some(Verdict::Refuse(format!("{what}. {}", hint_for(key))));
    match key {
        // HTTPS on the admin port (the client and quorum ports' TLS is in `tls_keys`).
        k if TLS_SWITCHES.contains(&k) && on => {
            refuse("HTTPS on the admin port is not implemented")
        }
        k if TLS_SWITCHES.contains(&k) => Some(Verdict::NoEffect(
            "set to false, which is what Paddock does",
        )),
        k if k.starts_with("authProvider.") && BUILT_IN_PROVIDERS.contains(&value) => Some(
            Verdict::NoEffect("a provider Paddock always has (digest and ip are built in)"),
        ),
        k if k.starts_with("authProvider.") => {
            refuse("only the digest, ip, x509 and SASL authentication providers are implemented")
        }
        "skipACL" if is_yes(value) => refuse("ACL checks cannot be turned off"),
        "skipACL" => Some(Verdict::NoEffect(ALWAYS_ACL)),
        "enforceQuota" if on => refuse("quotas are not enforced"),
        "enforceQuota" => Some(Verdict::NoEffect("quotas are not enforced, as asked")),
        "audit.enable" if on => refuse("the audit log is not implemented"),
        "audit.enable" => Some(Verdict::NoEffect("no audit log is asked for")),
        // Durability Paddock always gives.
        "forceSync" | "syncEnabled" => Some(Verdict::NoEffect(ALWAYS_FSYNC)),
        k if k.starts_with("metricsProvider.") => Some(Verdict::NoEffect(METRICS)),
        "localSessionsEnabled" | "localSessionsUpgradingEnabled" => {
            Some(Verdict::NoEffect(GLOBAL_SESSIONS))
        }
        k if k.starts_with("multiAddress.") => Some(Verdict::NoEffect(SINGLE_ADDRESS)),
        "electionAlg" => Some(Verdict::NoEffect(
            "Paddock has one election algorithm (ZooKeeper's 3)",
        )),
        "initialConfig" => Some(Verdict::NoEffect(
            "Paddock reads the members from server.N lines or dynamicConfigFile",
        )),
        "digest.enabled" => Some(Verdict::NoEffect(
            "Paddock checks every log record and snapshot with a CRC",
        )),
        "leaderServes" => Some(Verdict::NoEffect("a Paddock leader always serves clients")),
        "preAllocSize"
        | "cnxTimeout"
        | "clientPortListenBacklog"
        | "maxCnxns"
        | "connectToLearnerMasterLimit"
        | "serverCnxnFactory"
        | "admin.idleTimeout"
        | "admin.commandURL"
        | "quorum.cnxn.threads.size"
        | "snapSizeLimitInKb"
        | "txnLogSizeLimitInKb"
        | "maxResponseCacheSize"
        | "maxGetChildrenResponseCacheSize"
        | "electionPortBindRetry"
        | "observer.reconnectDelayMs"
        | "observerMaster.port"
        | "learner.asyncSending"
        | "learner.closeSocketAsync"
        | "leader.closeSocketAsync"
        | "flushDelay"
        | "maxWriteQueuePollTime"
        | "maxBatchSize"
        | "requestThrottleLimit" => Some(Verdict::NoEffect(TUNING)),
        k if k.starts_with("netty.") || k.starts_with("jvm.") => Some(Verdict::NoEffect(TUNING)),
        _ => None,
    }
}

/// What to do about a refused key.
fn hint_for(key: &str) -> &'static str {
    if key.starts_with("authProvider.") {
        "Remove it and use digest or SASL DIGEST-MD5 authentication, or keep running \
         ZooKeeper for this ensemble"
    } else if key == "skipACL" {
        "Remove it (or set skipACL=no): Paddock always checks ACLs; open a node to everyone \
         with the world:anyone ACL instead"
    } else if key == "enforceQuota" {
        "Remove it (or set enforceQuota=false): Paddock keeps /zookeeper/quota but does not \
         enforce it yet"
    } else if key == "audit.enable" {
        "Remove it (or set audit.enable=false): Paddock writes no audit log yet"
    } else {
        NO_TLS
    }
}

fn is_true(value: &str) -> bool {
    value.trim().eq_ignore_ascii_case("true")
}

/// ZooKeeper reads skipACL as "yes" or not.
fn is_yes(value: &str) -> bool {
    matches!(value.trim().to_ascii_lowercase().as_str(), "yes" | "true")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(key: &str, value: &str) -> String {
        match classify(key, value) {
            Some(Verdict::Refuse(what)) => what,
            other => panic!("{key}={value}: expected a refusal, got {other:?}"),
        }
    }

    fn no_effect(key: &str, value: &str) {
        assert!(
            matches!(classify(key, value), Some(Verdict::NoEffect(_))),
            "{key}={value}: expected no effect, got {:?}",
            classify(key, value)
        );
    }

    #[test]
    fn settings_that_would_weaken_security_or_durability_are_refused() {
        for (key, value, says) in [
            ("admin.forceHttps", "true", "HTTPS"),
            (
                "authProvider.1",
                "com.example.MyAuthenticationProvider",
                "digest",
            ),
            ("skipACL", "yes", "ACL"),
            ("enforceQuota", "true", "quota"),
            ("audit.enable", "true", "audit"),
            ("admin.portUnification", "true", "HTTPS"),
        ] {
            let what = refused(key, value);
            assert!(what.contains(says), "{key}: {what}");
            assert!(
                what.contains("Remove it") || what.contains("remove it"),
                "{key}: says what to do: {what}"
            );
        }
    }

    #[test]
    fn settings_paddock_always_provides_or_that_only_tune_have_no_effect() {
        for (key, value) in [
            ("admin.forceHttps", "false"),
            (
                "authProvider.x509",
                "org.apache.zookeeper.server.auth.X509AuthenticationProvider",
            ),
            (
                "authProvider.1",
                "org.apache.zookeeper.server.auth.DigestAuthenticationProvider",
            ),
            ("skipACL", "no"),
            ("enforceQuota", "false"),
            ("audit.enable", "false"),
            ("forceSync", "no"),
            ("forceSync", "yes"),
            ("syncEnabled", "true"),
            ("metricsProvider.className", "x.PrometheusMetricsProvider"),
            ("metricsProvider.httpPort", "7000"),
            ("localSessionsEnabled", "true"),
            ("multiAddress.enabled", "true"),
            ("electionAlg", "3"),
            ("preAllocSize", "65536"),
            ("maxCnxns", "100"),
            (
                "serverCnxnFactory",
                "org.apache.zookeeper.server.NettyServerCnxnFactory",
            ),
            ("netty.server.outstandingHandshake.limit", "10"),
            ("jvm.pause.warn-threshold.ms", "10000"),
            ("requestThrottleLimit", "1000"),
        ] {
            no_effect(key, value);
        }
    }

    #[test]
    fn keys_paddock_handles_or_does_not_know_are_not_classified() {
        for key in [
            "tickTime",
            "globalOutstandingLimit",
            "quorumListenOnAllIPs",
            "superDigest",
            "myCustomKey",
        ] {
            assert_eq!(classify(key, "1"), None, "{key}");
        }
    }
}
