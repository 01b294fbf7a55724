//! break-crash-loop against the emulator: a failing task scales the group to 0.

mod common;

use common::{event, Cloud, REGION};
use reconciler_lambdas::{break_crash_loop, BreakCrashLoopClients, BreakCrashLoopConfig};

const GROUP: &str = "minecraft-asg";

fn config() -> BreakCrashLoopConfig {
    BreakCrashLoopConfig::from_lookup(|name| match name {
        "ASG_NAME" => Some(GROUP.to_owned()),
        "ASG_REGION" => Some(REGION.to_owned()),
        _ => None,
    })
    .expect("valid config")
}

/// AWS's "ECS Task State Change" samples the crash-loop rule matches (tests/events/SOURCES.md):
/// the fixture, its stop code, and the container's exit code.
const CRASHES: [(&str, &str, Option<i64>); 2] = [
    (
        "ecs-task-stopped-essential-container-exited.json",
        "EssentialContainerExited",
        Some(1),
    ),
    ("ecs-task-failed-to-start.json", "TaskFailedToStart", None),
];

#[tokio::test]
async fn a_crashed_task_stops_the_server() {
    for (fixture, stop_code, exit_code) in CRASHES {
        for start in [1, 0] {
            let cloud = Cloud::new();
            cloud.create_group(GROUP, start).await;
            assert_eq!(cloud.group(GROUP).await.0, start);

            let clients = BreakCrashLoopClients::new(&cloud.sdk);
            let outcome = break_crash_loop(&config(), &clients, &event(fixture))
                .await
                .expect("crash handled");

            assert_eq!(outcome.asg_name, GROUP);
            assert_eq!(outcome.desired_capacity, 0);
            assert_eq!(outcome.task.stop_code.as_deref(), Some(stop_code));
            assert_eq!(outcome.task.containers.len(), 1);
            assert_eq!(
                outcome.task.containers[0].name.as_deref(),
                Some("minecraft")
            );
            assert_eq!(outcome.task.containers[0].exit_code, exit_code, "{fixture}");

            let (desired, instances) = cloud.group(GROUP).await;
            assert_eq!(desired, 0, "{fixture}: started at {start}");
            assert!(instances.is_empty(), "{instances:?}");
        }
    }
}

#[tokio::test]
async fn an_unexpected_payload_still_stops_the_server() {
    let cloud = Cloud::new();
    cloud.create_group(GROUP, 1).await;
    let clients = BreakCrashLoopClients::new(&cloud.sdk);
    let outcome = break_crash_loop(&config(), &clients, &serde_json::json!({"detail": 7}))
        .await
        .expect("handled");
    assert_eq!(outcome.task.stop_code, None);
    assert_eq!(cloud.group(GROUP).await.0, 0);
}
