use serde::de::{self, Deserialize, Visitor};

use super::*;
use crate::raw::*;

/// A deserializer that only records the field names serde asks for, then gives up.
struct FieldNames<'a>(&'a mut Vec<&'static str>);

impl<'de> de::Deserializer<'de> for FieldNames<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.extend(fields);
        Err(de::Error::custom("recorded"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

fn serde_fields<T: for<'de> Deserialize<'de>>() -> Vec<&'static str> {
    let mut names = Vec::new();
    let _ = T::deserialize(FieldNames(&mut names));
    names.sort_unstable();
    names
}

fn schema_fields(fields: &[Field]) -> Vec<&'static str> {
    let mut names: Vec<&str> = fields.iter().map(|f| f.name).collect();
    names.sort_unstable();
    names
}

#[test]
fn schema_has_exactly_the_raw_fields() {
    assert_eq!(schema_fields(ROOT), serde_fields::<RawConfig>());
    assert_eq!(schema_fields(SERVER), serde_fields::<RawServer>());
    assert_eq!(schema_fields(LIMITS), serde_fields::<RawLimits>());
    assert_eq!(schema_fields(CACHE), serde_fields::<RawCache>());
    assert_eq!(schema_fields(ACME), serde_fields::<RawAcme>());
    assert_eq!(schema_fields(SITE), serde_fields::<RawSite>());
    assert_eq!(schema_fields(TLS), serde_fields::<RawTls>());
    assert_eq!(schema_fields(SITE_LOG), serde_fields::<RawSiteLog>());
    assert_eq!(schema_fields(ROUTE), serde_fields::<RawRoute>());
    assert_eq!(schema_fields(MATCH), serde_fields::<RawMatch>());
    assert_eq!(schema_fields(POOL), serde_fields::<RawPool>());
    assert_eq!(schema_fields(RECYCLE), serde_fields::<RawRecycle>());
    assert_eq!(schema_fields(HEALTH), serde_fields::<RawHealth>());
    assert_eq!(schema_fields(RAPID_FAIL), serde_fields::<RawRapidFail>());
    assert_eq!(schema_fields(ORPHAN), serde_fields::<RawOrphan>());
    assert_eq!(schema_fields(CPU), serde_fields::<RawCpu>());
    assert_eq!(schema_fields(CGROUP_LIMITS), serde_fields::<RawCgroupLimits>());
}

/// A TOML value of each shape, every key present, so serde proves the types agree.
fn sample(shape: &Shape) -> toml::Value {
    match shape {
        Shape::Str | Shape::Text(_) => toml::Value::String("1".into()),
        Shape::Uint(_) => toml::Value::Integer(1),
        Shape::Bool => toml::Value::Boolean(true),
        Shape::Array(item) => toml::Value::Array(vec![sample(item)]),
        Shape::Patterns => toml::Value::Array(vec![toml::Value::String("1".into())]),
        Shape::Map(item) => toml::Value::Table([("k".to_string(), sample(item))].into_iter().collect()),
        Shape::Table(fields) => {
            toml::Value::Table(fields.iter().map(|f| (f.name.to_string(), sample(&f.shape))).collect())
        }
    }
}

#[test]
fn schema_types_agree_with_serde() {
    let doc = sample(&Shape::Table(ROOT));
    let raw = RawConfig::deserialize(doc);
    assert!(raw.is_ok(), "{raw:?}");
}

#[test]
fn suggestions() {
    let server = || SERVER.iter().map(|f| f.name);
    assert_eq!(closest("state_dri", server()), Some("state_dir"));
    assert_eq!(closest("StateDir", server()), Some("state_dir"));
    assert_eq!(closest("max-history", server()), Some("max_history"));
    assert_eq!(closest("colour", server()), None);
    assert_eq!(closest("queue_lenght", POOL.iter().map(|f| f.name)), Some("queue_length"));
    assert_eq!(edit_distance("kitten", "sitting"), 3);
}

fn problems(text: &str) -> (Vec<Problem>, Spanned<DeTable<'_>>) {
    let mut doc = DeTable::parse(text).expect("valid toml");
    let p = check(&mut doc);
    (p, doc)
}

#[test]
fn finds_every_problem_and_repairs() {
    let text = r#"
[server]
state_dri = "x"
max_history = -1
[limits]
queue_length = 5
max_body = 4096
[[sites]]
bindings = "http://*:80"
[pools.a]
processes = "4"
command = ["a", 5]
"#;
    let (p, doc) = problems(text);
    let paths: Vec<String> = p.iter().map(|p| p.path.to_string()).collect();
    let got: Vec<(&str, &str, &str)> =
        p.iter().zip(&paths).map(|(p, path)| (path.as_str(), &text[p.span.clone()], p.message.as_str())).collect();
    let want = [
        ("limits.queue_length", "queue_length", "unknown key here; `queue_length` is a key of [pools.NAME]"),
        ("pools.a.command[1]", "5", "expected a string, found the integer 5"),
        ("pools.a.processes", "\"4\"", "expected a whole number from 0 to 4294967295, found the string \"4\""),
        ("server.max_history", "-1", "expected a whole number from 0 to 4294967295, found the integer -1"),
        ("server.state_dri", "state_dri", "unknown key; did you mean `state_dir`?"),
        ("sites[0].bindings", "\"http://*:80\"", "expected an array of strings, found the string \"http://*:80\""),
        ("sites[0].name", "[[sites]]", "missing key `name`: expected a string"),
    ];
    let mut got_sorted = got.clone();
    got_sorted.sort();
    assert_eq!(got_sorted, want, "{got:#?}");
    // The repaired tree deserializes; integer sizes became text.
    let raw = RawConfig::deserialize(toml::de::Deserializer::from(doc));
    let raw = raw.expect("repaired tree deserializes");
    assert_eq!(raw.limits.max_body, "4096");
    assert_eq!(raw.pools["a"].command, ["a", ""]);
    assert_eq!(raw.pools["a"].processes, 1);
}

#[test]
fn sites_written_as_a_table_say_how_to_write_them() {
    let (p, _) = problems("[sites]\nname = \"a\"\n");
    assert_eq!(p.len(), 1);
    assert!(p[0].message.starts_with("expected an array of tables, written [[sites]]"), "{}", p[0].message);
}
