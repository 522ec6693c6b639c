//! The server id a StatefulSet pod derives from its host name (`--myid-from-hostname`):
//! every pod shares one template, so the id must come from the pod itself. Pod
//! `<name>-<ordinal>` is server `ordinal + 1`, as the operator numbers `server.N` lines.

/// myid for host name `host`: the integer after its last '-', plus 1. The host name may
/// be a fully qualified name; only its first label counts.
pub fn myid_from_host_name(host: &str) -> Result<u64, String> {
    let label = host.split('.').next().unwrap_or(host);
    let ordinal = label
        .rsplit_once('-')
        .map(|(_, suffix)| suffix)
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            format!(
                "host name {host:?} does not end in -<ordinal> (a StatefulSet pod's name, \
                 e.g. zk-0); pass --myid instead"
            )
        })?;
    ordinal
        .parse::<u64>()
        .ok()
        .and_then(|o| o.checked_add(1))
        .ok_or_else(|| format!("host name {host:?}: ordinal {ordinal} is too large"))
}

/// This machine's host name: `$HOSTNAME` (what the pod spec and tests set), else
/// gethostname(2).
pub fn own_host_name() -> Result<String, String> {
    if let Some(name) = std::env::var("HOSTNAME")
        .ok()
        .filter(|n| !n.trim().is_empty())
    {
        return Ok(name.trim().to_string());
    }
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that much.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return Err(format!(
            "cannot read the host name: {}",
            std::io::Error::last_os_error()
        ));
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).trim().to_string();
    if name.is_empty() {
        return Err("the host name is empty".into());
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinal_plus_one() {
        assert_eq!(myid_from_host_name("zk-0"), Ok(1));
        assert_eq!(myid_from_host_name("my-ensemble-4"), Ok(5));
        assert_eq!(
            myid_from_host_name("paddock-2.paddock-headless.ns.svc.cluster.local"),
            Ok(3)
        );
    }

    #[test]
    fn no_ordinal_is_an_error() {
        for bad in [
            "zk",
            "zk-",
            "zk-a1",
            "zk0",
            "",
            "-",
            "a-1b",
            "zk-99999999999999999999999",
        ] {
            let err = myid_from_host_name(bad).unwrap_err();
            assert!(err.contains("host name"), "{bad}: {err}");
        }
        assert!(
            myid_from_host_name("zk")
                .unwrap_err()
                .contains("does not end in -<ordinal>")
        );
    }

    #[test]
    fn the_host_name_is_known() {
        assert!(!own_host_name().unwrap().is_empty());
    }
}
