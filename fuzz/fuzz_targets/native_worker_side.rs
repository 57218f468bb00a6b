//! The worker side of a native connection fed arbitrary bytes after a valid HELLO, as a
//! misbehaving listener would send them: the engine must fail the connection, never panic.
#![no_main]

use bulkhead_proto::native::conn::Server;
use bulkhead_proto::native::{encode, Frame, Hello};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fuzz_target!(|data: &[u8]| {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let (mut peer, io) = tokio::io::duplex(1 << 16);
        let mut hello = BytesMut::new();
        encode(&Frame::Hello(Hello::default()), &mut hello).expect("hello");
        peer.write_all(&hello).await.expect("write hello");
        let server = tokio::spawn(async move {
            let Ok(mut server) = Server::handshake(io, Hello::default()).await else { return };
            while let Some(req) = server.accept().await {
                drop(req);
            }
        });
        let _ = peer.write_all(data).await;
        let _ = peer.shutdown().await;
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), peer.read_to_end(&mut sink)).await;
        drop(peer);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), server).await;
    });
});
