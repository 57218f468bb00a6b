use super::*;

fn head(text: &str) -> Result<Option<(Response<()>, usize)>, String> {
    cgi_head(text.as_bytes())
}

#[test]
fn cgi_status_location_and_headers() {
    let (resp, used) = head("Status: 404 Not Found\r\nX-A: 1\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\nbody")
        .expect("parses")
        .expect("whole");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(resp.headers().get_all(header::SET_COOKIE).iter().count(), 2);
    assert!(resp.headers().get("status").is_none());
    assert_eq!(used, "Status: 404 Not Found\r\nX-A: 1\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n".len());
    let (resp, _) = head("Location: /elsewhere\n\n").expect("parses").expect("whole");
    assert_eq!(resp.status(), StatusCode::FOUND);
    let (resp, _) = head("Content-Type: text/html\r\n\r\n").expect("parses").expect("whole");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(head("Content-Type: text/html\r\n").expect("parses").is_none());
    assert!(head("Status: soon\r\n\r\n").expect_err("bad status").contains("Status"));
}

#[test]
fn server_name_drops_the_port() {
    assert_eq!(server_name(b"example.com:8080"), b"example.com");
    assert_eq!(server_name(b"example.com"), b"example.com");
    assert_eq!(server_name(b"[::1]:80"), b"[::1]");
    assert_eq!(server_name(b"[::1]"), b"[::1]");
}

#[test]
fn variables_carry_the_script_the_addresses_and_headers_but_not_proxy() {
    let mut req = Request::builder()
        .method("POST")
        .uri("/app/x.php/extra?a=1")
        .header("host", "shop.example:8080")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("content-length", "3")
        .header("proxy", "http://evil")
        .header("x-thing", "1")
        .header("x-thing", "2")
        .body(())
        .expect("request");
    req.extensions_mut().insert(CgiFacts {
        remote: "10.0.0.1:5555".parse().expect("addr"),
        local: "127.0.0.1:8080".parse().expect("addr"),
        https: true,
        script: Some(CgiScript {
            filename: "/srv/app/x.php".into(),
            name: "/app/x.php".into(),
            path_info: "/extra".into(),
            document_root: "/srv/app".into(),
        }),
    });
    let (parts, ()) = req.into_parts();
    let mut out = BytesMut::new();
    params(&mut out, &parts);
    let mut stream = Vec::new();
    while let Some(r) = record::decode(&mut out).expect("records") {
        assert_eq!(r.kind, record::PARAMS);
        stream.extend_from_slice(&r.content);
    }
    let vars: std::collections::HashMap<String, String> = record::Pairs::new(&stream)
        .map(|p| p.map(|(n, v)| (String::from_utf8_lossy(n).into_owned(), String::from_utf8_lossy(v).into_owned())))
        .collect::<Result<_, _>>()
        .expect("pairs");
    let get = |k: &str| vars.get(k).map(String::as_str);
    assert_eq!(get("SCRIPT_FILENAME"), Some("/srv/app/x.php"));
    assert_eq!(get("SCRIPT_NAME"), Some("/app/x.php"));
    assert_eq!(get("PATH_INFO"), Some("/extra"));
    assert_eq!(get("PATH_TRANSLATED"), Some("/srv/app/extra"));
    assert_eq!(get("QUERY_STRING"), Some("a=1"));
    assert_eq!(get("REQUEST_URI"), Some("/app/x.php/extra?a=1"));
    assert_eq!(get("REQUEST_METHOD"), Some("POST"));
    assert_eq!(get("CONTENT_TYPE"), Some("application/x-www-form-urlencoded"));
    assert_eq!(get("CONTENT_LENGTH"), Some("3"));
    assert_eq!(get("REMOTE_ADDR"), Some("10.0.0.1"));
    assert_eq!(get("REMOTE_PORT"), Some("5555"));
    assert_eq!(get("SERVER_PORT"), Some("8080"));
    assert_eq!(get("SERVER_NAME"), Some("shop.example"));
    assert_eq!(get("HTTPS"), Some("on"));
    assert_eq!(get("REDIRECT_STATUS"), Some("200"));
    assert_eq!(get("HTTP_X_THING"), Some("1, 2"));
    assert_eq!(get("HTTP_HOST"), Some("shop.example:8080"));
    assert_eq!(get("HTTP_PROXY"), None);
    assert_eq!(get("HTTP_CONTENT_TYPE"), None);
}
