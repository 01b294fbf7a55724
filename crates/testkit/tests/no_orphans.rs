//! The emulator never outlives the process that started it.
#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reconciler_testkit::{project_root, Emulator};

const CHILD_ENV: &str = "RECONCILER_TESTKIT_ORPHAN_CHILD";
const PID_PREFIX: &str = "LAUNCHER_PID ";

/// True while `pid` is a live process (a zombie counts as gone).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn wait_gone(pid: u32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    !alive(pid)
}

/// Helper run in a child process by `killed_test_process_takes_the_emulator_down`;
/// does nothing in a normal test run.
#[test]
fn orphan_child_helper() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let emulator = Emulator::start(&project_root()).expect("start emulator");
    println!("{PID_PREFIX}{}", emulator.pid().expect("pid"));
    std::thread::sleep(Duration::from_secs(300));
}

#[test]
fn killed_test_process_takes_the_emulator_down() {
    let mut child = Command::new(std::env::current_exe().expect("current exe"))
        .args([
            "orphan_child_helper",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn child test process");
    let stdout = child.stdout.take().expect("piped stdout");
    let pid = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        // libtest may print "test orphan_child_helper ... " on the same line.
        .find_map(|line| {
            line.split_once(PID_PREFIX)
                .map(|(_, pid)| pid.trim().parse::<u32>())
        })
        .expect("child printed the launcher pid")
        .expect("pid is a number");
    assert!(alive(pid), "launcher {pid} runs while its parent lives");

    child.kill().expect("SIGKILL the child test process");
    child.wait().expect("reap child");
    assert!(
        wait_gone(pid, Duration::from_secs(10)),
        "launcher {pid} outlived its killed parent"
    );
}

#[test]
fn dropping_the_handle_stops_the_emulator() {
    let emulator = Emulator::start(&project_root()).expect("start emulator");
    let pid = emulator.pid().expect("pid");
    assert!(emulator.url().starts_with("http://127.0.0.1:"));
    assert!(alive(pid));
    drop(emulator);
    assert!(
        wait_gone(pid, Duration::from_secs(10)),
        "launcher {pid} still running"
    );
}
