//! The listener side of a native connection fed arbitrary bytes after a valid HELLO, as a
//! broken or hostile worker would send them, with a few streams open: the engine must fail
//! those streams and the connection cleanly, never panic.
#![no_main]

use bulkhead_proto::native::conn::Client;
use bulkhead_proto::native::{encode, Frame, Hello, RequestHead};
use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use tokio::io::AsyncWriteExt;

fuzz_target!(|data: &[u8]| {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let (io, mut peer) = tokio::io::duplex(1 << 16);
        let mut hello = BytesMut::new();
        encode(&Frame::Hello(Hello::default()), &mut hello).expect("hello");
        peer.write_all(&hello).await.expect("write hello");
        let Ok(client) = Client::handshake(io, Hello::default()).await else { return };
        let mut streams = Vec::new();
        for _ in 0..3 {
            let head = RequestHead { method: Bytes::from_static(b"GET"), target: Bytes::from_static(b"/"), headers: vec![] };
            if let Ok(s) = client.open(head, true) {
                streams.push(s);
            }
        }
        let _ = peer.write_all(data).await;
        drop(peer);
        for (_send, mut recv) in streams {
            if recv.response().await.is_ok() {
                while let Some(Ok(_)) = recv.data().await {}
            }
        }
    });
});
