//! SASL DIGEST-MD5 between servers (`quorum.auth.*`) on real 3-server ensembles: with
//! every member logging in and requiring logins, the ensemble elects and serves writes;
//! a member whose QuorumLearner password is wrong is refused by the others (the log says
//! why) and never joins, while the two others keep a quorum.

mod common;

use std::time::Duration;

use common::ensemble::{Ensemble, ensure_node, member_3_stays_out};
use common::run;

const JAAS: &str = r#"
QuorumServer {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    user_zkpeer="peer_secret";
};
QuorumLearner {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    username="zkpeer"
    password="peer_secret";
};
BadLearner {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    username="zkpeer"
    password="not_the_secret";
};
"#;

fn sasl_ensemble(dir: &std::path::Path, member_3: &[&str]) -> Ensemble {
    let jaas = dir.join("jaas.conf");
    std::fs::write(&jaas, JAAS).unwrap();
    let mut b = Ensemble::builder(3)
        .direct()
        .cfg(&format!(
            "java.security.auth.login.config={}",
            jaas.display()
        ))
        .cfg("quorum.auth.enableSasl=true")
        .cfg("quorum.auth.learnerRequireSasl=true")
        .cfg("quorum.auth.serverRequireSasl=true");
    for line in member_3 {
        b = b.member_cfg(3, line);
    }
    b.start()
}

#[test]
fn an_ensemble_whose_members_log_in_elects_and_serves() {
    let dir = tempfile::tempdir().unwrap();
    let ens = sasl_ensemble(dir.path(), &[]);
    run(async {
        ens.wait_stable(Duration::from_secs(60)).await;
        for id in ens.ids() {
            ensure_node(ens.member(id).client(), "/sasl", Duration::from_secs(20)).await;
        }
    });
    for id in ens.ids() {
        assert!(
            ens.member(id)
                .server
                .log()
                .contains("quorum SASL: the peer logged in"),
            "member {id}"
        );
    }
    ens.assert_no_fatal_log();
}

#[test]
fn a_member_with_a_wrong_password_is_refused_and_the_others_serve() {
    let dir = tempfile::tempdir().unwrap();
    let ens = sasl_ensemble(
        dir.path(),
        &["quorum.auth.learner.saslLoginContext=BadLearner"],
    );
    member_3_stays_out(&ens);
    let log = ens.member(1).server.log() + &ens.member(2).server.log();
    assert!(
        log.contains("wrong password for user"),
        "the refusal names the cause"
    );
    let log3 = ens.member(3).server.log();
    assert!(
        log3.contains("refused our login"),
        "member 3 says why it cannot join"
    );
}

#[test]
fn a_member_that_does_not_log_in_is_refused_when_logins_are_required() {
    let dir = tempfile::tempdir().unwrap();
    let ens = sasl_ensemble(
        dir.path(),
        &[
            "quorum.auth.serverRequireSasl=false",
            "quorum.auth.learnerRequireSasl=false",
        ],
    );
    member_3_stays_out(&ens);
    let log = ens.member(1).server.log() + &ens.member(2).server.log();
    assert!(
        log.contains("the peer did not log in"),
        "the refusal names the cause"
    );
}
