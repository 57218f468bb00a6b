//! Unit tests of the `RequestQueue`: slots, FIFO hand-off, full, timeout, refusal, demand start,
//! waiters that give up.

use super::*;
use bulkhead_proto::{Protocol, WorkerAddress, WorkerInfo};
use tokio::sync::mpsc;

fn worker(id: u64, concurrency: u32) -> Arc<Worker> {
    let share = Arc::new(PoolShare::new("api", None));
    Worker::new(
        &WorkerInfo {
            pool: "api".into(),
            worker: WorkerId(id),
            pid: 1000 + id as u32,
            address: WorkerAddress::Unix(format!("/nonexistent/api.w{id}.sock").into()),
            protocol: Protocol::Http,
            concurrency,
        },
        &share,
    )
}

fn queue(len: u32, timeout_ms: u64) -> (Arc<RequestQueue>, mpsc::UnboundedReceiver<ListenerToManager>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (RequestQueue::new("api", len, Duration::from_millis(timeout_ms), tx), rx)
}

#[tokio::test]
async fn free_slot_taken_at_once_least_loaded_first() {
    let (q, _rx) = queue(10, 1000);
    q.worker_up(worker(1, 2));
    q.worker_up(worker(2, 2));
    let a = q.acquire(None, false).await.unwrap();
    let b = q.acquire(None, false).await.unwrap();
    assert_ne!(a.worker().id, b.worker().id, "second request goes to the idle worker");
    let c = q.acquire(None, false).await.unwrap();
    let d = q.acquire(None, false).await.unwrap();
    assert_eq!(q.in_flight(), 4);
    drop((a, b, c, d));
    assert_eq!(q.in_flight(), 0);
    assert_eq!(q.take_dispatched(), 4);
    assert_eq!(q.take_dispatched(), 0);
}

#[tokio::test]
async fn released_slot_goes_to_the_oldest_waiter() {
    let (q, _rx) = queue(10, 5000);
    q.worker_up(worker(1, 1));
    let held = q.acquire(None, false).await.unwrap();
    let (order_tx, mut order_rx) = mpsc::unbounded_channel();
    for n in 0..3 {
        let q2 = q.clone();
        let order_tx = order_tx.clone();
        tokio::spawn(async move {
            let slot = q2.acquire(None, false).await.unwrap();
            order_tx.send(n).unwrap();
            drop(slot);
        });
        // Make sure waiter n is queued before waiter n+1.
        while q.waiting() < n + 1 {
            tokio::task::yield_now().await;
        }
    }
    drop(held);
    let got: Vec<usize> =
        vec![order_rx.recv().await.unwrap(), order_rx.recv().await.unwrap(), order_rx.recv().await.unwrap()];
    assert_eq!(got, vec![0, 1, 2]);
    assert_eq!(q.in_flight(), 0);
}

#[tokio::test]
async fn full_queue_refuses_at_once() {
    let (q, _rx) = queue(1, 5000);
    q.worker_up(worker(1, 1));
    let _held = q.acquire(None, false).await.unwrap();
    let q2 = q.clone();
    let waiter = tokio::spawn(async move { q2.acquire(None, false).await.map(|_| ()) });
    while q.waiting() < 1 {
        tokio::task::yield_now().await;
    }
    assert_eq!(q.acquire(None, false).await.err(), Some(QueueError::Full));
    assert_eq!(QueueError::Full.reason(), "QueueFull");
    waiter.abort();
}

#[tokio::test]
async fn waiting_too_long_times_out_without_leaking() {
    let (q, _rx) = queue(10, 50);
    q.worker_up(worker(1, 1));
    let held = q.acquire(None, false).await.unwrap();
    assert_eq!(q.acquire(None, false).await.err(), Some(QueueError::Timeout));
    assert_eq!(QueueError::Timeout.reason(), "AppPoolTimer");
    assert_eq!(q.waiting(), 0);
    drop(held);
    assert_eq!(q.in_flight(), 0);
    assert!(q.acquire(None, false).await.is_ok());
}

#[tokio::test]
async fn waiter_that_gives_up_does_not_leak_its_slot() {
    let (q, _rx) = queue(10, 5000);
    q.worker_up(worker(1, 1));
    let held = q.acquire(None, false).await.unwrap();
    let q2 = q.clone();
    let gone = tokio::spawn(async move { q2.acquire(None, false).await.map(|_| ()) });
    while q.waiting() < 1 {
        tokio::task::yield_now().await;
    }
    gone.abort();
    let _ = gone.await;
    assert_eq!(q.waiting(), 0);
    drop(held);
    assert_eq!(q.in_flight(), 0);
    let again = q.acquire(None, false).await.unwrap();
    assert_eq!(q.in_flight(), 1);
    drop(again);
}

#[tokio::test]
async fn no_worker_demand_starts_once_then_worker_up_serves() {
    let (q, mut rx) = queue(10, 5000);
    let mut waiters = Vec::new();
    for _ in 0..3 {
        let q2 = q.clone();
        waiters.push(tokio::spawn(async move { q2.acquire(None, false).await.map(|s| s.worker().id) }));
    }
    while q.waiting() < 3 {
        tokio::task::yield_now().await;
    }
    assert_eq!(rx.try_recv().unwrap(), ListenerToManager::DemandStart { pool: "api".into() });
    assert!(rx.try_recv().is_err(), "DemandStart is sent once");
    q.worker_up(worker(7, 10));
    for w in waiters {
        assert_eq!(w.await.unwrap(), Ok(WorkerId(7)));
    }
}

#[tokio::test]
async fn lasting_refusal_answers_queued_and_new_requests() {
    let (q, _rx) = queue(10, 5000);
    let q2 = q.clone();
    let waiter = tokio::spawn(async move { q2.acquire(None, false).await.map(|_| ()) });
    while q.waiting() < 1 {
        tokio::task::yield_now().await;
    }
    q.refuse(PoolRefusal::AppOffline);
    assert_eq!(waiter.await.unwrap(), Err(QueueError::Refused(PoolRefusal::AppOffline)));
    assert_eq!(q.acquire(None, false).await.err(), Some(QueueError::Refused(PoolRefusal::AppOffline)));
    q.available();
    q.worker_up(worker(1, 1));
    assert!(q.acquire(None, false).await.is_ok());
}

#[tokio::test]
async fn start_failure_answers_only_queued_requests() {
    let (q, mut rx) = queue(10, 5000);
    let q2 = q.clone();
    let waiter = tokio::spawn(async move { q2.acquire(None, false).await.map(|_| ()) });
    while q.waiting() < 1 {
        tokio::task::yield_now().await;
    }
    assert!(matches!(rx.try_recv(), Ok(ListenerToManager::DemandStart { .. })));
    q.refuse(PoolRefusal::AppStartFailed);
    assert_eq!(waiter.await.unwrap(), Err(QueueError::Refused(PoolRefusal::AppStartFailed)));
    let q2 = q.clone();
    let next = tokio::spawn(async move { q2.acquire(None, false).await.map(|_| ()) });
    while q.waiting() < 1 {
        tokio::task::yield_now().await;
    }
    assert!(matches!(rx.try_recv(), Ok(ListenerToManager::DemandStart { .. })), "the next request demand-starts again");
    next.abort();
}

#[tokio::test]
async fn retry_goes_to_another_worker_at_the_front() {
    let (q, mut rx) = queue(10, 5000);
    q.worker_up(worker(1, 1));
    q.worker_up(worker(2, 1));
    let a = q.acquire(None, false).await.unwrap();
    let b = q.acquire(None, false).await.unwrap();
    let (failed, other) = if a.worker().id == WorkerId(1) { (a, b) } else { (b, a) };
    // A plain waiter queues first; then the retry of a request worker 1 failed jumps ahead.
    let q2 = q.clone();
    let plain = tokio::spawn(async move { q2.acquire(None, false).await.map(|s| s.worker().id) });
    while q.waiting() < 1 {
        tokio::task::yield_now().await;
    }
    q.worker_unreachable(WorkerId(1), "connection reset");
    assert!(matches!(rx.try_recv(), Ok(ListenerToManager::WorkerUnreachable { worker: WorkerId(1), .. })));
    drop(failed);
    let q2 = q.clone();
    let retry = tokio::spawn(async move { q2.acquire(Some(WorkerId(1)), true).await.map(|s| s.worker().id) });
    while q.waiting() < 2 {
        tokio::task::yield_now().await;
    }
    drop(other);
    assert_eq!(retry.await.unwrap(), Ok(WorkerId(2)), "the retry is served first, by worker 2");
    assert_eq!(plain.await.unwrap(), Ok(WorkerId(2)));
    assert_eq!(q.in_flight(), 0);
}

#[tokio::test]
async fn draining_worker_gets_no_new_requests() {
    let (q, _rx) = queue(10, 50);
    q.worker_up(worker(1, 5));
    let held = q.acquire(None, false).await.unwrap();
    q.worker_draining(WorkerId(1));
    assert_eq!(q.acquire(None, false).await.err(), Some(QueueError::Timeout));
    drop(held);
    q.worker_gone(WorkerId(1));
    assert_eq!(q.in_flight(), 0);
}
