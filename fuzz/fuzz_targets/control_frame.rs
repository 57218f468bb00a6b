//! Control-channel frames (JSON behind a length prefix) on arbitrary bytes, for every direction.
#![no_main]

use bulkhead_proto::frame::decode;
use bulkhead_proto::{ListenerToManager, ManagerToListener, ManagerToWorker, WorkerToManager};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

fn drain<T: serde_like::Msg>(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    while let Ok(Some(_)) = decode::<T>(&mut buf, 1 << 16) {}
}

mod serde_like {
    pub trait Msg: serde::de::DeserializeOwned {}
    impl<T: serde::de::DeserializeOwned> Msg for T {}
}

fuzz_target!(|data: &[u8]| {
    drain::<ManagerToListener>(data);
    drain::<ListenerToManager>(data);
    drain::<ManagerToWorker>(data);
    drain::<WorkerToManager>(data);
});
