//! Two "hosts" on one machine: two Linux network namespaces joined by a veth pair, with
//! private addresses (10.213.0.1 and .2/24) that exist only inside them. `mpirun` runs
//! in the first and is given `--host 10.213.0.1:1,10.213.0.2:1`; the second rank's
//! daemon is started through an rsh agent script that enters the other namespace
//! (`ip netns exec`), as ssh would reach another machine. MPI traffic goes over TCP on
//! the veth only. The run must pass the same equality check as `mpirun -n 2` on one
//! host.
//!
//! Needs CAP_NET_ADMIN (root) and iproute2: skipped with a printed reason without them,
//! except under CI as root, where it must run.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod equality_support;
// This test starts mpirun its own way (inside a namespace); `mpirun()` is unused here.
#[allow(dead_code)]
mod mpi_support;

const HOST_A: &str = "10.213.0.1";
const HOST_B: &str = "10.213.0.2";
const SUBNET: &str = "10.213.0.0/24";

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("running ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The two namespaces and their veth pair; deleted on drop (also when the test fails),
/// after killing whatever this test left running in them.
struct Namespaces {
    a: String,
    b: String,
}

impl Namespaces {
    fn create() -> Result<Namespaces, String> {
        // Names unique per test process; interface names stay under 16 bytes.
        let id = std::process::id() % 100_000;
        let ns = Namespaces {
            a: format!("rg2h-a-{id}"),
            b: format!("rg2h-b-{id}"),
        };
        // Left by an earlier, killed test process that had our pid (deleting a
        // namespace also deletes its end of a veth pair); absent is the usual case.
        for space in [&ns.a, &ns.b] {
            let _ = ip(&["netns", "del", space]);
        }
        // `ns` is dropped (and cleans up) on every early return from here on.
        ip(&["netns", "add", &ns.a])?;
        ip(&["netns", "add", &ns.b])?;
        let (va, vb) = (format!("rg2ha{id}"), format!("rg2hb{id}"));
        ip(&["link", "add", &va, "type", "veth", "peer", "name", &vb])?;
        ip(&["link", "set", &va, "netns", &ns.a])?;
        ip(&["link", "set", &vb, "netns", &ns.b])?;
        for (space, dev, addr) in [(&ns.a, &va, HOST_A), (&ns.b, &vb, HOST_B)] {
            ip(&[
                "-n",
                space,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                dev,
            ])?;
            ip(&["-n", space, "link", "set", dev, "up"])?;
            ip(&["-n", space, "link", "set", "lo", "up"])?;
        }
        Ok(ns)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for space in [&self.a, &self.b] {
            // Processes inside keep a namespace alive after its name is gone; they are
            // ours (mpirun, its daemon, the ranks), left only if the run failed.
            if let Ok(out) = Command::new("ip").args(["netns", "pids", space]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
            // Deleting the namespace also deletes its end of the veth pair.
            if let Err(e) = ip(&["netns", "del", space]) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

/// Why this test cannot run here, or `None`. Under CI as root it must run: any reason
/// there fails the test.
fn skip_reason() -> Option<String> {
    if let Some(r) = mpi_support::skip_reason() {
        return Some(r);
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let reason = if Command::new("ip").arg("-V").output().is_err() {
        Some("the `ip` command (iproute2) is missing: apt-get install iproute2".to_string())
    } else if !root {
        Some("network namespaces need CAP_NET_ADMIN; not running as root".to_string())
    } else {
        None
    };
    if let Some(r) = &reason {
        assert!(
            std::env::var_os("CI").is_none() || !root,
            "CI runs as root and must run this test: {r}"
        );
        eprintln!("skipped: {r}");
    }
    reason
}

/// The rsh agent: OpenMPI runs `agent HOST COMMAND...` to start its daemon on HOST
/// (the command is one shell line, as ssh would pass it); here HOST names a namespace.
fn write_agent(dir: &Path, ns: &Namespaces) -> std::path::PathBuf {
    let path = dir.join("agent.sh");
    let script = format!(
        "#!/bin/sh\n\
         # Options an rsh-style caller may pass come first; the host follows.\n\
         while [ $# -gt 0 ]; do case \"$1\" in -*) shift;; *) break;; esac; done\n\
         host=\"$1\"; shift\n\
         echo \"$host\" >> '{log}'\n\
         case \"$host\" in\n\
         \x20 {HOST_A}) ns={a} ;;\n\
         \x20 {HOST_B}) ns={b} ;;\n\
         \x20 *) echo \"agent.sh: unknown host $host\" >&2; exit 1 ;;\n\
         esac\n\
         exec ip netns exec \"$ns\" /bin/sh -c \"$*\"\n",
        a = ns.a,
        b = ns.b,
        log = dir.join("agent.log").display()
    );
    std::fs::write(&path, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// `output()` with a deadline: a launch that hangs (a daemon that cannot connect back)
/// fails the test instead of blocking it; the guard then kills what is left.
fn output_within(mut cmd: Command, limit: Duration) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = cmd
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the two-namespace run did not finish in {limit:?}; stderr:\n{}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: std::fs::read(&out).unwrap(),
        stderr: std::fs::read(&err).unwrap(),
    }
}

#[test]
fn one_rank_in_each_of_two_network_namespaces_trains_like_one_process() {
    if skip_reason().is_some() {
        return;
    }
    let ns = match Namespaces::create() {
        Ok(ns) => ns,
        Err(e) => {
            // Root without CAP_NET_ADMIN (an unprivileged container) cannot either.
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs as root and must be able to create namespaces: {e}"
            );
            eprintln!("skipped: cannot create network namespaces (no CAP_NET_ADMIN?): {e}");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let agent = write_agent(dir.path(), &ns);
    equality_support::compare_two_ranks_with_one_process(&[], |rgrad, args| {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns.a, "mpirun", "-n", "2"])
            .args(["--host", &format!("{HOST_A}:1,{HOST_B}:1")])
            .args(["--mca", "plm_rsh_agent", agent.to_str().unwrap()])
            .args(["--mca", "plm_rsh_no_tree_spawn", "1"])
            // TCP over the veth only: no shared memory between the "hosts", and no
            // other interface (there is none but lo inside the namespaces).
            .args(["--mca", "btl", "self,tcp"])
            .args(["--mca", "btl_tcp_if_include", SUBNET])
            .args(["--mca", "oob_tcp_if_include", SUBNET])
            .arg(rgrad)
            .args(args)
            .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
        output_within(cmd, Duration::from_secs(300))
    });
    // mpirun runs rank 0 itself in the first namespace; the agent started the daemon
    // of rank 1 in the second.
    let hosts = std::fs::read_to_string(dir.path().join("agent.log")).unwrap();
    assert_eq!(hosts.lines().collect::<Vec<_>>(), vec![HOST_B], "{hosts}");
}
