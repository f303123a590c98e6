//! Interop: table files written by Orbit, read by a real `erl` with nothing but the
//! standard library (the reader in `orbit::ets::file`'s module docs, run verbatim:
//! framing, both `erlang:crc32/1` checksums, `binary_to_term` of the header and of each
//! object, the count), compared exactly (`=:=`) with hand-written Erlang literals, and
//! for a larger generated table with Orbit's objects through `term_to_binary` back.
//!
//! Skipped (with a message) when `erl` is not on the PATH.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use orbit::ets::{tab2file, FileOptions, Table, TableType};
use orbit_term::Term;
use serde::{Deserialize, Serialize};

/// The reader of the module docs, plus what the test needs around it.
const ERL_SRC: &str = r#"
-module(ets_file_erl).
-export([main/1]).

read(Path) ->
    {ok, B} = file:read_file(Path),
    <<"ORBITETS", 2:32/little, HLen:32/little, H:HLen/binary, HCrc:32/little, Rest/binary>> = B,
    HCrc = erlang:crc32(binary:part(B, 0, 16 + HLen)),
    N = byte_size(Rest) - 20,
    <<Objs:N/binary, "ORBITEND", Count:64/little, BCrc:32/little>> = Rest,
    BCrc = erlang:crc32(binary:part(Rest, 0, N + 16)),
    Header = binary_to_term(H),
    Objects = [binary_to_term(O) || <<L:32/little, O:L/binary>> <= Objs],
    Count = length(Objects),
    {Header, Objects}.

%% Each job: {TableFile, OutFile, ExpectedFile | none}. OutFile gets
%% term_to_binary({Header, Objects, EtsSize, Match}): EtsSize is the size of an ets
%% table of the header's type after inserting the objects; Match is whether
%% {Header, Objects} =:= the term in ExpectedFile (or `none`).
main(Jobs) ->
    lists:foreach(
      fun({In, Out, Expected}) ->
              {Header, Objects} = read(In),
              T = ets:new(t, [maps:get(type, Header)]),
              true = ets:insert(T, Objects),
              Size = ets:info(T, size),
              Match = case Expected of
                          none -> none;
                          _ -> {ok, [Exp]} = file:consult(Expected),
                               Exp =:= {Header, Objects}
                      end,
              ok = file:write_file(Out, term_to_binary({Header, Objects, Size, Match}))
      end, Jobs).
"#;

fn erl_available() -> bool {
    Command::new("erl")
        .args(["-noshell", "-eval", "halt()."])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn dir() -> PathBuf {
    let d = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("ets-file-erl-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs the jobs in one `erl`; returns each job's decoded output term.
fn run_erl(jobs: &[(PathBuf, Option<PathBuf>)]) -> Vec<Term> {
    let d = dir();
    let src = d.join("ets_file_erl.erl");
    std::fs::write(&src, ERL_SRC).unwrap();
    let outs: Vec<PathBuf> = (0..jobs.len())
        .map(|i| d.join(format!("out-{i}.etf")))
        .collect();
    let q = |p: &Path| format!("\"{}\"", p.display());
    let list = jobs
        .iter()
        .zip(&outs)
        .map(|((input, exp), out)| {
            format!(
                "{{{}, {}, {}}}",
                q(input),
                q(out),
                exp.as_deref().map_or("none".into(), q)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let eval = format!(
        "{{ok,M,B}} = compile:file({}, [binary,report]), {{module,M}} = code:load_binary(M, \"ets_file_erl.erl\", B), M:main([{list}]), halt().",
        q(&src)
    );
    let o = Command::new("erl")
        .args(["-noshell", "-eval", &eval])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "erl failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    outs.iter()
        .map(|p| {
            let b = std::fs::read(p).unwrap_or_else(|e| {
                panic!(
                    "erl wrote no {}: {e}; erl said: {}{}",
                    p.display(),
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                )
            });
            Term::decode(&b).unwrap()
        })
        .collect()
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Admin,
    Guest(u32),
    Team(String, bool),
    Custom { level: u8 },
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct User {
    name: String,
    tags: Vec<String>,
    age: Option<u8>,
    kind: Kind,
    score: f64,
    initial: char,
    big: i128,
    pair: (i32, bool),
}

fn user(name: &str, tags: &[&str], age: Option<u8>, kind: Kind) -> User {
    User {
        name: name.into(),
        tags: tags.iter().map(|s| s.to_string()).collect(),
        age,
        kind,
        score: 1.5,
        initial: 'é',
        big: 1 << 70,
        pair: (-5, true),
    }
}

/// The Erlang literal Orbit's serde mapping must produce for `user(..)`'s fixed fields.
const USER_FIXED: &str =
    "score => 1.5, initial => 233, big => 1180591620717411303424, pair => {-5, true}";

/// Part of the header as Erlang read it (the type atom read as a string).
#[derive(Deserialize)]
struct HeaderSeen {
    #[serde(rename = "type")]
    kind: String,
    size: u64,
}

fn elements(t: &Term) -> &[Term] {
    match t {
        Term::Tuple(e) => e,
        other => panic!("not a tuple: {other}"),
    }
}

#[test]
fn erl_reads_orbit_table_files_exactly() {
    if !erl_available() {
        eprintln!(
            "SKIPPED: `erl` is not on the PATH; install Erlang/OTP to run the table-file interop test"
        );
        return;
    }
    let d = dir();

    // 1. A small ordered_set compared with hand-written Erlang literals.
    let users: Table<u64, User> = Table::builder()
        .ordered_set()
        .public()
        .named("ets_file_erl_users")
        .build()
        .unwrap();
    users
        .insert(1, user("ann", &["a", "b"], Some(30), Kind::Admin))
        .unwrap();
    users
        .insert(2, user("bob", &[], None, Kind::Guest(3)))
        .unwrap();
    users
        .insert(
            3,
            user("cy", &["x"], Some(0), Kind::Team("red".into(), false)),
        )
        .unwrap();
    users
        .insert(4, user("di", &[], None, Kind::Custom { level: 2 }))
        .unwrap();
    let users_file = d.join("users.tab");
    tab2file(&users, &users_file, FileOptions::new()).unwrap();
    let expected = format!(
        "{{#{{name => <<\"ets_file_erl_users\">>, type => ordered_set, protection => public, \
         size => 4, key_type => <<\"u64\">>, value_type => <<\"{}\">>}},\n\
         [{{1, #{{name => <<\"ann\">>, tags => [<<\"a\">>, <<\"b\">>], age => 30, kind => admin, {USER_FIXED}}}}},\n\
          {{2, #{{name => <<\"bob\">>, tags => [], age => nil, kind => {{guest, 3}}, {USER_FIXED}}}}},\n\
          {{3, #{{name => <<\"cy\">>, tags => [<<\"x\">>], age => 0, kind => {{team, <<\"red\">>, false}}, {USER_FIXED}}}}},\n\
          {{4, #{{name => <<\"di\">>, tags => [], age => nil, kind => {{custom, #{{level => 2}}}}, {USER_FIXED}}}}}]}}.\n",
        std::any::type_name::<User>()
    );
    let expected_file = d.join("users.expected");
    std::fs::write(&expected_file, expected).unwrap();

    // 2. Generated tables of every type, compared with Orbit's own objects through
    // term_to_binary: keys and values of several shapes, Term values included.
    let mut jobs = vec![(users_file, Some(expected_file))];
    type Val = (Vec<u8>, BTreeMap<String, i64>, Option<f64>);
    type Obj = ((u32, String), Val);
    let mut generated: Vec<(TableType, Vec<Obj>)> = Vec::new();
    for (i, kind) in [
        TableType::Set,
        TableType::OrderedSet,
        TableType::Bag,
        TableType::DuplicateBag,
    ]
    .into_iter()
    .enumerate()
    {
        let t: Table<(u32, String), Val> = Table::builder().kind(kind).build().unwrap();
        for n in 0..300u32 {
            let mut m = BTreeMap::new();
            m.insert(format!("m{}", n % 5), -(n as i64) << (n % 40));
            let v = (
                (0..(n % 7) as u8).collect::<Vec<u8>>(),
                m,
                (n % 3 == 0).then_some(n as f64 / 7.0),
            );
            t.insert((n % 60, format!("k{}", n % 4)), v).unwrap();
        }
        let p = d.join(format!("gen-{i}.tab"));
        tab2file(&t, &p, FileOptions::new()).unwrap();
        // The file holds tab2list's order; read it back from the file to be sure.
        let back: Table<(u32, String), Val> = orbit::ets::file2tab(&p, FileOptions::new()).unwrap();
        assert_eq!(back.size().unwrap(), t.size().unwrap());
        generated.push((kind, t.tab2list().unwrap()));
        jobs.push((p, None));
    }
    let terms: Table<u64, Term> = Table::builder().build().unwrap();
    terms
        .insert(
            1,
            Term::tuple(vec![
                Term::atom("ok"),
                Term::atom("ünïcode"),
                Term::BigInt(Box::new(orbit_term::BigInt::from(-1) << 200)),
                Term::Float(-0.0),
            ]),
        )
        .unwrap();
    terms.insert(2, Term::nil()).unwrap();
    let terms_file = d.join("terms.tab");
    tab2file(&terms, &terms_file, FileOptions::new()).unwrap();
    jobs.push((terms_file, None));

    let outs = run_erl(&jobs);

    // 1: exact match with the literal, and ets holds all four.
    let o = elements(&outs[0]);
    assert!(
        o[3].exact_eq(&Term::bool(true)),
        "erl read {} {}; expected the literal in users.expected",
        o[0],
        o[1]
    );
    assert!(o[2].exact_eq(&Term::Int(4)), "ets size {}", o[2]);

    // 2: each object as Erlang read it is exactly Orbit's object, in file order.
    for (i, (kind, objs)) in generated.iter().enumerate() {
        let o = elements(&outs[1 + i]);
        let want = orbit_term::to_term(objs).unwrap();
        assert!(o[1].exact_eq(&want), "{kind:?}: erl read {}", o[1]);
        let h: HeaderSeen = orbit_term::from_term(&o[0]).unwrap();
        assert_eq!((h.kind, h.size), (kind.to_string(), objs.len() as u64));
        assert!(
            o[2].exact_eq(&Term::Int(objs.len() as i64)),
            "{kind:?}: ets size {}",
            o[2]
        );
        let typed: Vec<Obj> = orbit_term::from_term(&o[1]).unwrap();
        assert_eq!(&typed, objs, "{kind:?}");
    }
    let o = elements(&outs[5]);
    let mut want = terms.tab2list().unwrap();
    want.sort_by_key(|x| x.0);
    let mut got: Vec<(u64, Term)> = orbit_term::from_term(&o[1]).unwrap();
    got.sort_by_key(|x| x.0);
    assert_eq!(got.len(), 2);
    for (a, b) in want.iter().zip(&got) {
        assert_eq!(a.0, b.0);
        assert!(a.1.exact_eq(&b.1), "{} vs {}", a.1, b.1);
    }
}
