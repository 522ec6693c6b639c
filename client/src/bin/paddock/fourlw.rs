//! Four-letter words (`srvr`, `mntr`) over a plain TCP connection to the client port,
//! and their answers as JSON.

use std::time::Duration;

use paddock_client::ConnectString;
use serde_json::{Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::exit::Failure;

/// Sends `word` to `server` and returns the whole answer.
pub async fn ask(server: &str, word: &str, limit: Duration) -> Result<String, Failure> {
    let exchange = async {
        let mut stream = TcpStream::connect(server)
            .await
            .map_err(|e| (true, e.to_string()))?;
        stream
            .write_all(word.as_bytes())
            .await
            .map_err(|e| (true, e.to_string()))?;
        let mut answer = Vec::new();
        stream
            .read_to_end(&mut answer)
            .await
            .map_err(|e| (false, e.to_string()))?;
        Ok::<_, (bool, String)>(String::from_utf8_lossy(&answer).into_owned())
    };
    let answer = match tokio::time::timeout(limit, exchange).await {
        Ok(Ok(answer)) => answer,
        Ok(Err((connect, message))) => {
            return Err(Failure::FourLetterWord {
                server: server.to_string(),
                message: if connect {
                    format!("cannot connect: {message}")
                } else {
                    message
                },
                connect,
            });
        }
        Err(_) => {
            return Err(Failure::FourLetterWord {
                server: server.to_string(),
                message: format!("no answer to {word} within {limit:?}"),
                connect: true,
            });
        }
    };
    // ZooKeeper answers a word outside its whitelist with this sentence.
    if answer.contains("is not executed because it is not in the whitelist") {
        return Err(Failure::FourLetterWord {
            server: server.to_string(),
            message: answer.trim().to_string(),
            connect: false,
        });
    }
    if answer.is_empty() {
        return Err(Failure::FourLetterWord {
            server: server.to_string(),
            message: format!("empty answer to {word} (not allowed by 4lw.commands.whitelist?)"),
            connect: false,
        });
    }
    Ok(answer)
}

/// The servers a four-letter word goes to: every host of the connect string.
pub fn servers(connect: &str) -> Result<Vec<String>, Failure> {
    let cs = ConnectString::parse(connect)?;
    Ok(cs.hosts.iter().map(ToString::to_string).collect())
}

/// `srvr`'s `Key: value` lines as an object; whole numbers become numbers.
pub fn srvr_json(server: &str, answer: &str) -> Value {
    let mut obj = Map::new();
    obj.insert("server".into(), server.into());
    for line in answer.lines() {
        if let Some((key, value)) = line.split_once(": ") {
            obj.insert(key.trim().to_string(), scalar(value.trim()));
        }
    }
    Value::Object(obj)
}

/// `mntr`'s `key<TAB>value` lines as an object; numbers become numbers.
pub fn mntr_json(server: &str, answer: &str) -> Value {
    let mut obj = Map::new();
    obj.insert("server".into(), server.into());
    for line in answer.lines() {
        if let Some((key, value)) = line.split_once('\t') {
            obj.insert(key.trim().to_string(), scalar(value.trim()));
        }
    }
    Value::Object(obj)
}

fn scalar(text: &str) -> Value {
    if let Ok(n) = text.parse::<i64>() {
        return n.into();
    }
    if let Ok(x) = text.parse::<f64>()
        && x.is_finite()
        && text.contains('.')
    {
        return x.into();
    }
    text.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_become_objects() {
        let srvr = "Zookeeper version: 3.8.0\nLatency min/avg/max: 0/0.5/3\nNode count: 5\nMode: standalone\n";
        let v = srvr_json("h:1", srvr);
        assert_eq!(v["Node count"], 5);
        assert_eq!(v["Mode"], "standalone");
        assert_eq!(v["Latency min/avg/max"], "0/0.5/3");
        let v = mntr_json(
            "h:1",
            "zk_version\t3.8.0\nzk_avg_latency\t0.5\nzk_znode_count\t5\n",
        );
        assert_eq!(v["zk_znode_count"], 5);
        assert_eq!(v["zk_avg_latency"], 0.5);
        assert_eq!(v["server"], "h:1");
    }
}
