//! The `reconciler-lambda` binary as Lambda runs it: configuration checked
//! before the runtime loop, JSON logs without secrets, and one full
//! invocation through a stand-in for the Lambda Runtime API.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{event, REGION};
use reconciler_testkit::{fresh_account_id, sdk_config, Emulator};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_reconciler-lambda");
/// Put into the child's environment to prove it never reaches the logs.
const SECRET: &str = "wJalrXUtnFEMI-not-a-real-secret-7f3a9c";

/// Runs the binary with exactly `vars` as its environment.
fn run(vars: &[(&str, &str)]) -> Output {
    Command::new(BIN)
        .env_clear()
        .envs(vars.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run reconciler-lambda")
}

/// The JSON log lines the binary printed; every line must be JSON.
fn log_lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect()
}

fn config_failure(vars: &[(&str, &str)]) -> String {
    let out = run(vars);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains(SECRET), "the secret was logged: {stdout}");
    let lines = log_lines(&out.stdout);
    let [line] = lines.as_slice() else {
        panic!("one log line expected: {stdout}");
    };
    assert_eq!(line["level"], "ERROR");
    line["error"].as_str().expect("error field").to_owned()
}

#[test]
fn a_missing_handler_choice_stops_at_start() {
    assert_eq!(
        config_failure(&[]),
        "missing environment variable: RECONCILER_HANDLER"
    );
}

#[test]
fn every_missing_variable_is_listed_at_start() {
    assert_eq!(
        config_failure(&[
            ("RECONCILER_HANDLER", "instance-state-change"),
            ("AWS_SECRET_ACCESS_KEY", SECRET),
            ("RECORD_TTL", "soon"),
        ]),
        "missing environment variables: ASG_REGION, HOSTED_ZONE_ID, RECORD_NAME; invalid \
         environment variable: RECORD_TTL (expected whole seconds from 0 to 2147483647)"
    );
    assert_eq!(
        config_failure(&[("RECONCILER_HANDLER", "start-system")]),
        "missing environment variables: ASG_NAME, ASG_REGION, METRIC_NAMESPACE, METRIC_NAME, \
         METRIC_DIMENSIONS, METRIC_VALUE"
    );
}

#[test]
fn outside_lambda_the_runtime_variables_are_reported() {
    let error = config_failure(&[
        ("RECONCILER_HANDLER", "break-crash-loop"),
        ("ASG_NAME", "minecraft-asg"),
        ("ASG_REGION", REGION),
    ]);
    assert_eq!(
        error,
        "missing environment variables: AWS_LAMBDA_RUNTIME_API, AWS_LAMBDA_FUNCTION_NAME, \
         AWS_LAMBDA_FUNCTION_MEMORY_SIZE, AWS_LAMBDA_FUNCTION_VERSION"
    );
}

/// What the stand-in Runtime API saw posted back.
#[derive(Debug)]
struct Posted {
    path: String,
    body: Value,
}

/// A minimal Lambda Runtime API: hands out `event` once on `/next`, reports
/// every POST on the channel, and holds later `/next` polls open.
fn runtime_api(event: Value) -> (String, mpsc::Receiver<Posted>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().unwrap().to_string();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut served = false;
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let tx = tx.clone();
            let event = (!served).then(|| event.clone());
            served = true;
            std::thread::spawn(move || serve_connection(stream, event, tx));
        }
    });
    (address, rx)
}

fn serve_connection(stream: TcpStream, mut event: Option<Value>, tx: mpsc::Sender<Posted>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut stream = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return; // the client went away
        }
        let mut headers = HashMap::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
            }
        }
        let length: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let mut parts = request_line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));

        if method == "GET" && path.ends_with("/runtime/invocation/next") {
            let Some(payload) = event.take() else {
                // Hold the poll until the binary is killed.
                let _ = reader.read(&mut [0; 1]);
                return;
            };
            let payload = payload.to_string();
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis()
                + 30_000;
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                 lambda-runtime-aws-request-id: 8476a536-e9f4-11e8-9739-2dfe598c3fcd\r\n\
                 lambda-runtime-deadline-ms: {deadline}\r\n\
                 lambda-runtime-invoked-function-arn: \
                 arn:aws:lambda:{REGION}:123456789012:function:minecraft-break-crash-loop\r\n\
                 lambda-runtime-trace-id: Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1\r\n\
                 content-length: {}\r\n\r\n{payload}",
                payload.len()
            );
            if stream.write_all(response.as_bytes()).is_err() {
                return;
            }
        } else {
            let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let _ = tx.send(Posted {
                path: path.to_owned(),
                body,
            });
            let response = "HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n{}";
            if stream.write_all(response.as_bytes()).is_err() {
                return;
            }
        }
    }
}

/// Kills the child when the test ends, however it ends.
struct KillOnDrop(Option<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tokio::test]
async fn one_invocation_through_the_runtime_api() {
    // The binary cannot send the emulator's account header, so it works in
    // the emulator's default account; the group's name is unique instead.
    let default_account = "123456789012";
    let group = format!("crash-loop-{}", fresh_account_id());
    let emulator = Emulator::shared();
    let cloud = common::Cloud::with_config(sdk_config(emulator.url(), REGION, default_account));
    cloud.create_group(&group, 1).await;

    let (api, posted) = runtime_api(event("ecs-task-stopped-essential-container-exited.json"));
    let child = Command::new(BIN)
        .env_clear()
        .envs([
            ("RECONCILER_HANDLER", "break-crash-loop"),
            ("ASG_NAME", group.as_str()),
            ("ASG_REGION", REGION),
            ("AWS_LAMBDA_RUNTIME_API", api.as_str()),
            ("AWS_LAMBDA_FUNCTION_NAME", "minecraft-break-crash-loop"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            ("AWS_ENDPOINT_URL", emulator.url()),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", SECRET),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn reconciler-lambda");
    let mut child = KillOnDrop(Some(child));

    let reply = tokio::task::spawn_blocking(move || posted.recv_timeout(Duration::from_secs(60)))
        .await
        .unwrap()
        .expect("the binary posts a result");
    assert_eq!(
        reply.path, "/2018-06-01/runtime/invocation/8476a536-e9f4-11e8-9739-2dfe598c3fcd/response",
        "{reply:?}"
    );
    assert_eq!(reply.body["asg_name"], group.as_str());
    assert_eq!(reply.body["desired_capacity"], 0);
    assert_eq!(reply.body["task"]["stop_code"], "EssentialContainerExited");
    assert_eq!(reply.body["task"]["containers"][0]["exit_code"], 1);
    assert_eq!(cloud.group(&group).await.0, 0);

    let mut process = child.0.take().unwrap();
    process.kill().expect("kill reconciler-lambda");
    let out = process.wait_with_output().expect("collect output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains(SECRET), "the secret was logged: {stdout}");
    let lines = log_lines(&out.stdout);
    let messages: Vec<&str> = lines.iter().filter_map(|l| l["message"].as_str()).collect();
    assert!(messages.contains(&"configuration loaded"), "{stdout}");
    assert!(messages.contains(&"event handled"), "{stdout}");
    // The runtime's span carries the request id into the handler's lines.
    assert!(
        lines.iter().any(|l| l["message"] == "event handled"
            && l.to_string()
                .contains("8476a536-e9f4-11e8-9739-2dfe598c3fcd")),
        "{stdout}"
    );
}
