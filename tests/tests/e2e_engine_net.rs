//! End-to-end networking through the engine (root, real kernel): user networks, names,
//! isolation, published ports, IPAM, and teardown that leaves nothing.
//!
//! Traffic goes only between the host and the namespaces these tests make (and
//! 127.0.0.1). Every case has its own data and exec roots; a guard removes its containers
//! and networks even when it fails.

#![forbid(unsafe_code)]
// A harness = false test: clippy.toml's allow-unwrap-in-tests does not see it as a test.
#![allow(clippy::unwrap_used)]

mod e2e_cli_support;
mod e2e_engine_support;
mod e2e_linux_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use e2e_cli_support::{ok, text};
use e2e_engine_support::Engine;
use e2e_linux_support::wait_until;

fn main() {
    e2e_linux_support::run(&[
        (
            "ping_by_ip_and_name_and_isolation",
            ping_by_ip_and_name_and_isolation,
        ),
        (
            "published_port_reaches_the_container",
            published_port_reaches_the_container,
        ),
        (
            "ipam_full_subnet_and_fixed_ip",
            ipam_full_subnet_and_fixed_ip,
        ),
        (
            "internal_network_has_no_route_out",
            internal_network_has_no_route_out,
        ),
        (
            "network_rm_is_refused_while_in_use",
            network_rm_is_refused_while_in_use,
        ),
        (
            "concurrent_runs_get_distinct_addresses",
            concurrent_runs_get_distinct_addresses,
        ),
        ("connect_and_disconnect", connect_and_disconnect),
    ]);
}

/// An engine with a full busybox image (`bb`: every applet, for ping, ip, httpd).
fn engine() -> Engine {
    Engine::with_busybox("bb", true)
}

impl Engine {
    /// The bridge of network `name`.
    fn bridge(&self, name: &str) -> String {
        let v: serde_json::Value =
            serde_json::from_slice(&ok(&self.run(&["network", "inspect", name]))).unwrap();
        v[0]["Options"]["com.docker.network.bridge.name"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The links on the host whose names contain one of `names`.
    fn host_links(names: &[String]) -> Vec<String> {
        let out = Command::new("ip").args(["-o", "link"]).output().unwrap();
        text(&out.stdout)
            .lines()
            .filter(|l| names.iter().any(|n| l.contains(n.as_str())))
            .map(str::to_owned)
            .collect()
    }

    fn netns_files(&self) -> Vec<String> {
        std::fs::read_dir(self.dir().join("exec/netns"))
            .map(|d| d.map(|e| e.unwrap().path().display().to_string()).collect())
            .unwrap_or_default()
    }
}

fn nft_table() -> String {
    let out = Command::new("nft")
        .args(["list", "table", "inet", "berth"])
        .output()
        .unwrap();
    text(&out.stdout)
}

fn ping_by_ip_and_name_and_isolation() {
    let e = engine();
    ok(&e.run(&["network", "create", "--subnet", "10.231.1.0/24", "front"]));
    ok(&e.run(&["network", "create", "--subnet", "10.231.2.0/24", "back"]));
    for (name, net) in [("a", "front"), ("b", "front"), ("c", "back")] {
        ok(&e.run(&[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            net,
            "bb",
            "sleep",
            "60",
        ]));
    }
    let ip_of = |c: &str| {
        let v: serde_json::Value =
            serde_json::from_slice(&ok(&e.run(&["network", "inspect", "front"]))).unwrap();
        v[0]["Containers"]
            .as_object()
            .unwrap()
            .values()
            .find(|x| x["Name"] == c)
            .map(|x| {
                x["IPv4Address"]
                    .as_str()
                    .unwrap()
                    .split('/')
                    .next()
                    .unwrap()
                    .to_owned()
            })
    };
    let b_ip = ip_of("b").unwrap();
    assert!(b_ip.starts_with("10.231.1."), "{b_ip}");
    ok(&e.run(&["exec", "a", "ping", "-c1", "-W2", &b_ip]));
    ok(&e.run(&["exec", "a", "ping", "-c1", "-W2", "b"]));
    ok(&e.run(&["exec", "b", "ping", "-c1", "-W2", "a"]));
    // c is on another network: it cannot reach a or b, by address (names are unknown).
    let out = e.run(&["exec", "c", "ping", "-c1", "-W1", &b_ip]);
    assert_ne!(out.status.code(), Some(0), "c reached b: {out:?}");
    let out = e.run(&["exec", "c", "ping", "-c1", "-W1", "a"]);
    assert_ne!(out.status.code(), Some(0), "c resolved a: {out:?}");
    // Teardown leaves nothing of them.
    let bridges = vec![e.bridge("front"), e.bridge("back")];
    for c in ["a", "b", "c"] {
        ok(&e.run(&["rm", "-f", c]));
    }
    assert!(e.netns_files().is_empty(), "{:?}", e.netns_files());
    for n in ["front", "back"] {
        ok(&e.run(&["network", "rm", n]));
    }
    assert_eq!(Engine::host_links(&bridges), Vec::<String>::new());
    assert!(!nft_table().contains("10.231."), "{}", nft_table());
}

/// An HTTP GET of `/` on 127.0.0.1:port; the body.
fn http_get(port: u16) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(2),
    )?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    Ok(body)
}

/// A port on 127.0.0.1 nobody listens on now.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn published_port_reaches_the_container() {
    let e = engine();
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    let script =
        "mkdir -p /www && echo hello-from-berth > /www/index.html && httpd -f -p 80 -h /www";
    let id = text(&ok(&e.run(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "bridge",
        "-p",
        &publish,
        "bb",
        "sh",
        "-c",
        script,
    ])))
    .trim()
    .to_owned();
    assert!(
        wait_until(10, || http_get(port)
            .is_ok_and(|b| b.contains("hello-from-berth"))),
        "no page on 127.0.0.1:{port}: {:?}",
        http_get(port)
    );
    let tag = format!("port-{}", &id[..12]);
    assert!(nft_table().contains(&tag), "{}", nft_table());
    ok(&e.run(&["rm", "-f", "web"]));
    assert!(
        http_get(port).is_err(),
        "the port still answers after rm -f"
    );
    assert!(!nft_table().contains(&tag), "{}", nft_table());
    assert!(e.netns_files().is_empty());
    // The IPAM row is gone: the next container gets the same first address.
    let first = e.lines(&[
        "run",
        "--rm",
        "--network",
        "bridge",
        "bb",
        "sh",
        "-c",
        "ip -o -4 addr show eth0 | awk '{print $4}'",
    ]);
    assert_eq!(
        first,
        vec!["172.17.0.2/16".to_owned()],
        "(is 172.17/16 routed here?)"
    );
}

fn ipam_full_subnet_and_fixed_ip() {
    let e = engine();
    // A /29 has 6 host addresses; the gateway takes one: 5 containers fit.
    ok(&e.run(&["network", "create", "--subnet", "10.231.3.0/29", "tiny"]));
    // A subnet that overlaps one of berth's networks is refused, naming that network, and
    // nothing is made.
    let clash = e.run(&["network", "create", "--subnet", "10.231.3.0/24", "clash"]);
    assert_eq!(clash.status.code(), Some(1), "{clash:?}");
    let msg = text(&clash.stderr);
    assert!(
        msg.contains("overlaps network tiny's subnet 10.231.3.0/29"),
        "{msg}"
    );
    assert!(!text(&e.run(&["network", "ls"]).stdout).contains("clash"));
    // The same name again is "in use", whatever its subnet.
    let again = e.run(&["network", "create", "--subnet", "10.231.3.0/29", "tiny"]);
    assert_eq!(again.status.code(), Some(1), "{again:?}");
    assert!(!text(&again.stderr).contains("overlaps"), "{again:?}");
    let out = e.run(&[
        "run",
        "-d",
        "--name",
        "fixed",
        "--network",
        "tiny",
        "--ip",
        "10.231.3.6",
        "bb",
        "sleep",
        "60",
    ]);
    ok(&out);
    let err = e.run(&[
        "run",
        "-d",
        "--network",
        "tiny",
        "--ip",
        "10.231.3.6",
        "bb",
        "sleep",
        "60",
    ]);
    assert_eq!(err.status.code(), Some(125));
    assert!(text(&err.stderr).contains("10.231.3.6"), "{err:?}");
    let mut ips = Vec::new();
    for i in 0..4 {
        ok(&e.run(&[
            "run",
            "-d",
            "--name",
            &format!("n{i}"),
            "--network",
            "tiny",
            "bb",
            "sleep",
            "60",
        ]));
        let out = e.lines(&[
            "exec",
            &format!("n{i}"),
            "sh",
            "-c",
            "ip -o -4 addr show eth0 | awk '{print $4}'",
        ]);
        ips.push(out.join(""));
    }
    assert_eq!(
        ips,
        [
            "10.231.3.2/29",
            "10.231.3.3/29",
            "10.231.3.4/29",
            "10.231.3.5/29"
        ]
    );
    let before = e.lines(&["ps", "-a", "-q"]).len();
    let full = e.run(&[
        "run",
        "-d",
        "--name",
        "nope",
        "--network",
        "tiny",
        "bb",
        "sleep",
        "60",
    ]);
    assert_eq!(full.status.code(), Some(125));
    assert!(text(&full.stderr).contains("10.231.3.0/29"), "{full:?}");
    assert_eq!(
        e.lines(&["ps", "-a", "-q"]).len(),
        before,
        "the refused run left a container"
    );
    // A released address comes back.
    ok(&e.run(&["rm", "-f", "n1"]));
    ok(&e.run(&[
        "run",
        "-d",
        "--name",
        "again",
        "--network",
        "tiny",
        "bb",
        "sleep",
        "60",
    ]));
    let out = e.lines(&[
        "exec",
        "again",
        "sh",
        "-c",
        "ip -o -4 addr show eth0 | awk '{print $4}'",
    ]);
    assert_eq!(out, vec!["10.231.3.3/29".to_owned()]);
}

fn internal_network_has_no_route_out() {
    let e = engine();
    ok(&e.run(&[
        "network",
        "create",
        "--internal",
        "--subnet",
        "10.231.4.0/24",
        "inner",
    ]));
    ok(&e.run(&[
        "run",
        "-d",
        "--name",
        "i1",
        "--network",
        "inner",
        "bb",
        "sleep",
        "60",
    ]));
    let routes = e.lines(&["exec", "i1", "ip", "route"]);
    assert!(
        !routes.iter().any(|r| r.starts_with("default")),
        "{routes:?}"
    );
    // It still reaches its own network's peers.
    ok(&e.run(&[
        "run",
        "-d",
        "--name",
        "i2",
        "--network",
        "inner",
        "bb",
        "sleep",
        "60",
    ]));
    ok(&e.run(&["exec", "i1", "ping", "-c1", "-W2", "i2"]));
}

fn network_rm_is_refused_while_in_use() {
    let e = engine();
    ok(&e.run(&["network", "create", "--subnet", "10.231.5.0/24", "busy"]));
    let err = e.run(&["network", "create", "busy"]);
    assert_eq!(err.status.code(), Some(1));
    assert!(
        text(&err.stderr).contains("\"busy\" is already in use"),
        "{err:?}"
    );
    ok(&e.run(&[
        "run",
        "-d",
        "--name",
        "u",
        "--network",
        "busy",
        "bb",
        "sleep",
        "60",
    ]));
    let err = e.run(&["network", "rm", "busy"]);
    assert_eq!(err.status.code(), Some(1));
    assert!(text(&err.stderr).contains("1 active endpoint"), "{err:?}");
    let bridge = vec![e.bridge("busy")];
    ok(&e.run(&["rm", "-f", "u"]));
    ok(&e.run(&["network", "rm", "busy"]));
    assert_eq!(Engine::host_links(&bridge), Vec::<String>::new());
    assert!(e.lines(&["network", "ls", "-q"]).is_empty());
    // The last network gone (no other test runs at the same time), berth's table went
    // with it: `nft list ruleset` shows nothing of berth.
    let ruleset = Command::new("nft")
        .args(["list", "ruleset"])
        .output()
        .unwrap();
    assert!(
        !text(&ruleset.stdout).contains("berth"),
        "{}",
        text(&ruleset.stdout)
    );
}

fn concurrent_runs_get_distinct_addresses() {
    let e = engine();
    ok(&e.run(&["network", "create", "--subnet", "10.231.6.0/24", "many"]));
    let children: Vec<_> = (0..10)
        .map(|i| {
            e.command(&[
                "run",
                "-d",
                "--name",
                &format!("m{i}"),
                "--network",
                "many",
                "bb",
                "sleep",
                "60",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    for child in children {
        ok(&child.wait_with_output().unwrap());
    }
    let v: serde_json::Value =
        serde_json::from_slice(&ok(&e.run(&["network", "inspect", "many"]))).unwrap();
    let mut ips: Vec<String> = v[0]["Containers"]
        .as_object()
        .unwrap()
        .values()
        .map(|c| c["IPv4Address"].as_str().unwrap().to_owned())
        .collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 10, "{ips:?}");
    // Each container has the address the engine recorded.
    let seen = e.lines(&[
        "exec",
        "m3",
        "sh",
        "-c",
        "ip -o -4 addr show eth0 | awk '{print $4}'",
    ]);
    assert!(ips.contains(&seen.join("")), "{seen:?} not in {ips:?}");
}

fn connect_and_disconnect() {
    let e = engine();
    ok(&e.run(&["network", "create", "--subnet", "10.231.7.0/24", "one"]));
    ok(&e.run(&["network", "create", "--subnet", "10.231.8.0/24", "two"]));
    ok(&e.run(&[
        "run",
        "-d",
        "--name",
        "x",
        "--network",
        "one",
        "bb",
        "sleep",
        "60",
    ]));
    ok(&e.run(&[
        "run",
        "-d",
        "--name",
        "y",
        "--network",
        "two",
        "bb",
        "sleep",
        "60",
    ]));
    let out = e.run(&["exec", "x", "ping", "-c1", "-W1", "y"]);
    assert_ne!(out.status.code(), Some(0), "x reached y before connect");
    ok(&e.run(&["network", "connect", "two", "x"]));
    let links = e.lines(&["exec", "x", "ip", "-o", "-4", "addr"]);
    assert!(
        links
            .iter()
            .any(|l| l.contains("eth1") && l.contains("10.231.8.")),
        "{links:?}"
    );
    ok(&e.run(&["exec", "x", "ping", "-c1", "-W2", "y"]));
    ok(&e.run(&["network", "disconnect", "two", "x"]));
    let links = e.lines(&["exec", "x", "ip", "-o", "-4", "addr"]);
    assert!(!links.iter().any(|l| l.contains("10.231.8.")), "{links:?}");
    let out = e.run(&["exec", "y", "ping", "-c1", "-W1", "x"]);
    assert_ne!(
        out.status.code(),
        Some(0),
        "y still reaches x after disconnect"
    );
}
