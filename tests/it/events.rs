//! The scheduler's event stream (`Session::events`): jobs, stages, task attempts (failed ones
//! included), executors and training rounds, as they happen.

use kiln::prelude::*;
use kiln::Event;

/// Every event received so far.
fn drain(rx: &mut tokio::sync::broadcast::Receiver<Event>) -> Vec<Event> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        out.push(e);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_with_failing_attempts_reports_every_job_stage_and_attempt() {
    let kiln = Session::builder()
        .executors(2)
        .slots_per_executor(1)
        .inject_task_failures(1)
        .build()
        .await
        .unwrap();
    let mut rx = kiln.events();
    let sql = "SELECT value % 7 AS k, count(*) FROM generate_series(1, 10000) GROUP BY 1";
    kiln.sql(sql).await.unwrap().collect().await.unwrap();
    let events = drain(&mut rx);
    let jobs: Vec<&Event> = events
        .iter()
        .filter(|e| matches!(e, Event::JobStarted { .. }))
        .collect();
    assert_eq!(jobs.len(), 1, "{events:?}");
    let Event::JobStarted {
        job,
        stages,
        description,
    } = jobs[0]
    else {
        unreachable!()
    };
    // A job run for a SQL query is described by its text.
    assert_eq!(description, sql);
    let submitted = events
        .iter()
        .filter(|e| matches!(e, Event::StageSubmitted { .. }))
        .count();
    let finished = events
        .iter()
        .filter(|e| matches!(e, Event::StageFinished { .. }))
        .count();
    assert_eq!((submitted, finished), (*stages, *stages), "{events:?}");
    // Every task failed once (injected) and then succeeded: one failed and one good attempt
    // each, numbered 0 and 1.
    let attempts: Vec<(u32, u32, u32, bool)> = events
        .iter()
        .filter_map(|e| match e {
            Event::TaskFinished {
                stage,
                partition,
                attempt,
                failure,
                seconds,
                ..
            } => {
                assert!(*seconds >= 0.0);
                Some((*stage, *partition, *attempt, failure.is_none()))
            }
            _ => None,
        })
        .collect();
    let failed = attempts.iter().filter(|a| !a.3).count();
    let good = attempts.iter().filter(|a| a.3).count();
    assert!(good >= *stages && failed == good, "{attempts:?}");
    assert!(attempts.iter().all(|a| a.3 == (a.2 == 1)), "{attempts:?}");
    let metrics = kiln.metrics();
    assert_eq!(failed as u64, metrics.task_retries);
    match events.last() {
        Some(Event::JobFinished {
            job: last, error, ..
        }) => {
            assert_eq!(last, job);
            assert!(error.is_none());
        }
        other => panic!("the last event should end the job: {other:?}"),
    }
    // One JSON object per event, tagged.
    let line = serde_json::to_value(&events[0]).unwrap();
    assert_eq!(line["event"], "job_started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fit_reports_one_event_per_kernel_round_and_a_failed_job_its_error() {
    let kiln = Session::builder().executors(2).build().await.unwrap();
    let mut rx = kiln.events();
    let df = kiln
        .sql(
            "SELECT CAST(value % 13 AS DOUBLE) AS x, CAST(value % 7 AS DOUBLE) AS y \
             FROM generate_series(1, 2000)",
        )
        .await
        .unwrap();
    KMeans::new(3).seed(1).max_iter(5).fit(&df).await.unwrap();
    let rounds: Vec<Event> = drain(&mut rx)
        .into_iter()
        .filter(|e| matches!(e, Event::KernelRound { .. }))
        .collect();
    assert_eq!(rounds.len() as u64, kiln.metrics().kernel_rounds);
    assert!(rounds.iter().all(|r| matches!(
        r,
        Event::KernelRound { attempts: 1, partitions, .. } if *partitions > 0
    )));

    let err = kiln
        .sql("SELECT 1 / (value - value) FROM generate_series(1, 3)")
        .await
        .unwrap()
        .collect()
        .await;
    assert!(err.is_err(), "division by zero must fail");
    let finished: Vec<Event> = drain(&mut rx)
        .into_iter()
        .filter(|e| matches!(e, Event::JobFinished { error: Some(m), .. } if m.contains("zero")))
        .collect();
    assert_eq!(finished.len(), 1);
}
