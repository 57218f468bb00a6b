//! Binding strings (`scheme://host:port`), directly and through a whole config: never a panic;
//! an accepted binding's text parses again to the same binding, and the binding rebuilt from its
//! parts (`*`, the IP as Rust prints it, bracketed for IPv6, or the lowercase name) parses to the
//! same scheme, host and port. The config route must agree with the direct parse.
#![no_main]

use std::net::IpAddr;

use bulkhead_config::{parse_binding, Binding, BindingHost, Scheme};
use libfuzzer_sys::fuzz_target;

fn rebuilt(b: &Binding) -> String {
    let scheme = match b.scheme {
        Scheme::Http => "http",
        Scheme::Https => "https",
    };
    let host = match &b.host {
        BindingHost::Any => "*".to_string(),
        BindingHost::Ip(IpAddr::V6(ip)) => format!("[{ip}]"),
        BindingHost::Ip(IpAddr::V4(ip)) => ip.to_string(),
        BindingHost::Name(name) => name.clone(),
    };
    format!("{scheme}://{host}:{}", b.port)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let direct = parse_binding(text);
    if let Ok(b) = &direct {
        assert_eq!(b.text, text, "the text is kept as written");
        let again = parse_binding(&b.text).expect("an accepted binding's text parses again");
        assert_eq!(&again, b);
        if let BindingHost::Name(name) = &b.host {
            assert!(!name.bytes().any(|c| c.is_ascii_uppercase()), "names are lowercase: {name:?}");
        }
        let canon = rebuilt(b);
        let c = parse_binding(&canon).unwrap_or_else(|e| panic!("rebuilt {canon:?} refused: {e}"));
        assert_eq!((c.scheme, &c.host, c.port), (b.scheme, &b.host, b.port), "rebuilt {canon:?}");
    }
    // Through the config: a TOML literal string holds anything but `'` and control characters.
    if text.chars().any(|c| c == '\'' || c.is_control()) {
        return;
    }
    let config =
        format!("[[sites]]\nname = \"s\"\nbindings = ['{text}']\nroutes = [{{ path = \"/\", redirect = \"/x\" }}]\n");
    if let Ok(config) = bulkhead_config::parse(&config, "fuzz.toml", std::path::Path::new("/nonexistent")) {
        let b = direct.as_ref().expect("the config accepted a binding parse_binding refuses");
        assert_eq!(config.sites[0].bindings.first(), Some(b), "the config's binding is the direct parse");
    }
});
