use super::*;
use crate::routing::Policy;

fn cfg(extra: &str) -> Result<Config, Vec<String>> {
    let text = format!(
        "[scopes]\n\"tiles:read\" = \"r\"\n[[upstreams]]\nname = \"tiles\"\nbackends = [\"http://127.0.0.1:3000\"]\n{extra}"
    );
    validate(toml::from_str(&text).map_err(|e| vec![e.to_string()])?)
}

#[test]
fn durations() {
    assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
    assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
    assert_eq!(parse_duration("4h").unwrap(), Duration::from_secs(14400));
    assert_eq!(parse_duration("90d").unwrap(), Duration::from_secs(90 * 86400));
    assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
    assert!(parse_duration("4 hours").is_err());
    assert!(parse_duration("").is_err());
    assert!(parse_duration("-1s").is_err());
}

#[test]
fn every_problem_is_reported_with_its_key() {
    let errs = cfg(
        "[[routes]]\npath = \"/t/{z}\"\nupstream = \"tile\"\n[[routes]]\nprefix = \"/x\"\nupstream = \"tiles\"\nscopes = [\"nope\"]\n[server]\nlisten = \"nowhere\"\n",
    )
    .unwrap_err();
    let all = errs.join("\n");
    assert!(all.contains("routes[0].upstream: no upstream named \"tile\""), "{all}");
    assert!(
        all.contains("routes[1].scopes: scope \"nope\" is not declared"),
        "{all}"
    );
    assert!(all.contains("server.listen"), "{all}");
}

#[test]
fn body_timeouts_have_defaults_and_cannot_be_zero() {
    let c = cfg("").unwrap();
    assert_eq!(c.server.body_read_timeout, Duration::from_secs(30));
    assert_eq!(c.server.lingering_time, Duration::from_secs(5));
    assert_eq!(c.server.lingering_bytes, 4 * 1024 * 1024);
    assert_eq!(c.upstreams[0].body_read_timeout, Duration::from_secs(60));
    let all = cfg("body_read_timeout = \"0s\"\n[server]\nbody_read_timeout = \"0\"\nlingering_time = \"0s\"\n")
        .unwrap_err()
        .join("\n");
    assert!(all.contains("server.body_read_timeout: must be more than 0"), "{all}");
    assert!(
        all.contains("upstreams[0].body_read_timeout: must be more than 0"),
        "{all}"
    );
    assert!(!all.contains("lingering_time"), "0s turns lingering off: {all}");
}

#[test]
fn connection_limits_have_defaults_and_refuse_zero() {
    let c = cfg("").unwrap();
    assert_eq!(c.server.handshake_timeout, Duration::from_secs(10));
    assert_eq!(c.server.idle_timeout, Duration::from_secs(75));
    assert_eq!(c.server.send_timeout, Duration::from_secs(60));
    assert_eq!(c.server.h2_keep_alive_interval, Duration::from_secs(30));
    assert_eq!(c.server.h2_keep_alive_timeout, Duration::from_secs(20));
    assert_eq!(c.server.max_connections_per_ip, 1024);
    assert_eq!((c.admin.max_connections, c.admin.max_connections_per_ip), (128, 32));
    let all = cfg(
        "[server]\nhandshake_timeout = \"0s\"\nidle_timeout = \"0\"\nsend_timeout = \"0s\"\nh2_keep_alive_interval = \"0ms\"\nh2_keep_alive_timeout = \"soon\"\nmax_connections_per_ip = 0\n[admin]\nmax_connections = 0\nmax_connections_per_ip = 0\n",
    )
    .unwrap_err()
    .join("\n");
    for key in [
        "server.handshake_timeout: must be more than 0",
        "server.idle_timeout: must be more than 0",
        "server.send_timeout: must be more than 0",
        "server.h2_keep_alive_interval: must be more than 0",
        "server.h2_keep_alive_timeout: \"soon\" is not a duration",
        "server.max_connections_per_ip: must be at least 1",
        "admin.max_connections: must be at least 1",
        "admin.max_connections_per_ip: must be at least 1",
    ] {
        assert!(all.contains(key), "{key} in {all}");
    }
}

#[test]
fn the_header_read_timeout_is_at_least_a_second() {
    // The connections' checks run four times per it (server::conn::CheckedTimer).
    assert_eq!(cfg("").unwrap().server.header_read_timeout, Duration::from_secs(10));
    assert_eq!(
        cfg("[server]\nheader_read_timeout = \"1s\"\n")
            .unwrap()
            .server
            .header_read_timeout,
        Duration::from_secs(1)
    );
    for (v, why) in [
        ("0s", "must be more than 0"),
        ("1ms", "under the 1s minimum"),
        ("999ms", "under the 1s minimum"),
    ] {
        let all = cfg(&format!("[server]\nheader_read_timeout = \"{v}\"\n"))
            .unwrap_err()
            .join("\n");
        assert!(
            all.contains("server.header_read_timeout: ") && all.contains(why),
            "{v}: {all}"
        );
    }
}

#[test]
fn unknown_keys_are_rejected() {
    let e = toml::from_str::<FileConfig>("[server]\nlisten_addr = \"x\"\n").unwrap_err();
    assert!(e.to_string().contains("listen_addr"), "{e}");
}

#[test]
fn explicit_named_token_lists_must_be_declared_and_never_manage() {
    let text = "[scopes]\n\"tiles:read\" = \"r\"\n\"clients:manage\" = \"m\"\n[named_tokens]\nread_only_dataset_streaming = [\"datasets:nope\"]\nread_write_all = [\"clients:manage\"]\n";
    let all = validate(toml::from_str(text).unwrap()).unwrap_err().join("\n");
    assert!(
        all.contains("named_tokens.read_only_dataset_streaming: scope \"datasets:nope\" is not declared"),
        "{all}"
    );
    assert!(
        all.contains("named_tokens.read_write_all: clients:manage is never granted"),
        "{all}"
    );
    // Defaults quietly keep only declared scopes.
    let c = cfg("").unwrap();
    assert!(c.named_tokens.read_only_dataset_streaming.is_empty());
    assert!(!c.named_tokens.read_write_all.iter().any(|s| s == "clients:manage"));
}

const PARTNER: &str = "[[issuers]]\nname = \"partner\"\nissuer = \"https://partner.example\"\naudiences = [\"tilegate\"]\nalgorithms = [\"HS256\"]\nhmac_secret_env = \"PARTNER_SECRET\"\n";

#[test]
fn routes_accept_self_only_unless_they_name_issuers() {
    let c = cfg(&format!(
        "{PARTNER}scopes = [\"tiles:read\"]\n[[routes]]\nprefix = \"/a/\"\nupstream = \"tiles\"\n[[routes]]\nprefix = \"/b/\"\nupstream = \"tiles\"\nissuers = [\"partner\"]\n[[routes]]\nprefix = \"/c/\"\nupstream = \"tiles\"\nissuers = [\"self\", \"partner\", \"self\"]\n"
    ))
    .unwrap();
    let partner = c.issuers[0].id;
    assert_eq!(partner, crate::routing::IssuerSet::id_of("partner"));
    assert_ne!(partner, crate::routing::IssuerSet::SELF);
    let sets: Vec<Vec<u64>> = c
        .routes
        .iter()
        .map(|r| match &r.policy {
            Policy::Token { issuers, .. } => issuers.ids().to_vec(),
            Policy::Public => panic!("token routes"),
        })
        .collect();
    assert_eq!(sets[0], vec![crate::routing::IssuerSet::SELF], "default: self only");
    assert_eq!(sets[1], vec![partner]);
    assert_eq!(sets[2], vec![crate::routing::IssuerSet::SELF, partner]);
}

#[test]
fn issuer_policy_problems_are_reported() {
    let text = format!(
        "[scopes]\n\"tiles:read\" = \"r\"\n\"clients:manage\" = \"m\"\n[[upstreams]]\nname = \"tiles\"\nbackends = [\"http://127.0.0.1:3000\"]\n\
         {PARTNER}scopes = [\"tiles:premium\", \"clients:manage\"]\nscope_map = {{ \"partner.read\" = [\"tiles:read\"], \"partner.admin\" = [\"clients:manage\"], \"two words\" = [\"tiles:read\"] }}\norg = \"org 1\"\nmax_lifetime = \"0s\"\ncache_ttl = \"soon\"\n\
         [[issuers]]\nissuer = \"https://other.example\"\naudiences = [\"a\"]\nalgorithms = [\"ES256\"]\njwks_file = \"x\"\n\
         [[issuers]]\nname = \"SELF\"\nissuer = \"https://third.example\"\naudiences = [\"a\"]\nalgorithms = [\"ES256\"]\njwks_file = \"x\"\n\
         [[issuers]]\nname = \"partner\"\nissuer = \"https://fourth.example\"\naudiences = [\"a\"]\nalgorithms = [\"ES256\"]\njwks_file = \"x\"\n\
         [[routes]]\nprefix = \"/a/\"\nupstream = \"tiles\"\nissuers = [\"self\", \"nobody\"]\n\
         [[routes]]\nprefix = \"/b/\"\nupstream = \"tiles\"\nissuers = []\n\
         [[routes]]\nprefix = \"/c/\"\nupstream = \"tiles\"\npublic = true\nissuers = [\"partner\"]\n\
         [identity_headers]\nissuer = \"x_tilegate_org\"\n"
    );
    let all = validate(toml::from_str(&text).unwrap()).unwrap_err().join("\n");
    for want in [
        "issuers[0].scopes: scope \"tiles:premium\" is not declared",
        "issuers[0].scopes: \"clients:manage\" is never granted by an external issuer",
        "issuers[0].scope_map.\"partner.admin\": \"clients:manage\" is never granted",
        "issuers[0].scope_map: \"two words\": a claim value has no spaces",
        "issuers[0].org: \"org 1\" must be an organization id",
        "issuers[0].max_lifetime: must be at least 1s",
        "issuers[0].cache_ttl: \"soon\" is not a duration",
        "issuers[1].name: is required",
        "issuers[2].name: \"SELF\" must be",
        "issuers[3].name: \"partner\" is used twice",
        "routes[0].issuers: no issuer named \"nobody\"",
        "routes[1].issuers: must name at least one issuer",
        "routes[2].issuers: a public route reads no token",
        "identity_headers: \"x_tilegate_org\" is used twice",
    ] {
        assert!(all.contains(want), "missing {want:?} in:\n{all}");
    }
    assert!(!all.contains("partner.read"), "a valid mapping is no problem:\n{all}");
}

#[test]
fn named_token_lifetime_policy() {
    let c = cfg("").unwrap();
    assert_eq!(c.named_tokens.max_valid_minutes, 9999);
    assert!(c.named_tokens.allow_never_expiring);
    let c = cfg("[named_tokens]\nmax_valid_time = \"30d\"\nallow_never_expiring = false\n");
    // 30 days is more than validTime can say (9999 minutes).
    assert!(c.unwrap_err().join("\n").contains("named_tokens.max_valid_time"));
    let c = cfg("[named_tokens]\nmax_valid_time = \"24h\"\nallow_never_expiring = false\n").unwrap();
    assert_eq!(c.named_tokens.max_valid_minutes, 1440);
    assert!(!c.named_tokens.allow_never_expiring);
    for bad in ["0m", "90s", "10000m", "500ms", "soon"] {
        let e = cfg(&format!("[named_tokens]\nmax_valid_time = \"{bad}\"\n")).unwrap_err();
        assert!(e.join("\n").contains("named_tokens.max_valid_time"), "{bad}: {e:?}");
    }
}

#[test]
fn ceilings_default_to_every_declared_scope_but_manage_and_narrow() {
    let text = "[scopes]\n\"tiles:read\" = \"r\"\n\"b:x\" = \"b\"\n\"clients:manage\" = \"m\"\n";
    let c = validate(toml::from_str(text).unwrap()).unwrap();
    let l = |org: Option<&[&str]>, user: Option<&[&str]>| crate::store::Limits {
        name: "u".into(),
        org_id: "o".into(),
        org_ceiling: org.map(|v| v.iter().map(|s| s.to_string()).collect()),
        user_ceiling: user.map(|v| v.iter().map(|s| s.to_string()).collect()),
        disabled: false,
        tiles: None,
        allowed_origins: None,
    };
    assert_eq!(c.ceiling(&l(None, None)), vec!["b:x", "tiles:read"]);
    assert_eq!(
        c.ceiling(&l(None, Some(&["tiles:read", "clients:manage"]))),
        vec!["tiles:read"]
    );
    assert_eq!(
        c.ceiling(&l(Some(&["clients:manage", "gone:x", "tiles:read"]), None)),
        vec!["clients:manage", "tiles:read"],
        "an explicit org ceiling may name clients:manage; undeclared scopes drop out"
    );
    assert!(c.ceiling(&l(Some(&[]), None)).is_empty());
    assert!(c.ceiling(&l(Some(&["tiles:read"]), Some(&[]))).is_empty());
    let until = c.credential_revoked_until(1000);
    assert_eq!(until, 1000 + 4 * 3600 + 30, "max_ttl plus the leeway by default");
}

#[test]
fn named_pairs_are_exactly_five() {
    let c = cfg("").unwrap();
    let ok = [
        ("read_only", "all"),
        ("read_write", "all"),
        ("read_only", "dataset_streaming"),
        ("read_write", "dataset_streaming_refreshing"),
        ("read_only", "embedded_published_project"),
    ];
    for (a, r) in ok {
        assert!(c.named_tokens.lookup(a, r).is_some(), "{a} {r}");
    }
    for a in ["read_only", "read_write", "x"] {
        for r in [
            "all",
            "dataset_streaming",
            "dataset_streaming_refreshing",
            "embedded_published_project",
            "y",
        ] {
            if !ok.contains(&(a, r)) {
                assert!(c.named_tokens.lookup(a, r).is_none(), "{a} {r}");
            }
        }
    }
}

#[test]
fn a_route_path_that_an_inline_endpoint_would_shadow_is_refused_naming_both() {
    let defaults = cfg("").unwrap().endpoints;
    let mut cases: Vec<(&str, String)> = Vec::new();
    for (key, path, kind) in defaults.targets() {
        match kind {
            // The item endpoints: one client, one named token.
            crate::routing::EndpointKind::Client | crate::routing::EndpointKind::NamedTokenItem => {
                cases.push((key, format!("{path}/c1")));
                cases.push((key, format!("{path}/{{id}}")));
            }
            _ => cases.push((key, path.to_owned())),
        }
    }
    assert_eq!(cases.len(), 15, "all eleven endpoints, two paths per item endpoint");
    for (key, path) in cases {
        let errs = cfg(&format!(
            "[[routes]]\nname = \"shadowed\"\npath = \"{path}\"\nupstream = \"tiles\"\npublic = true\n"
        ))
        .expect_err(&path)
        .join("\n");
        assert!(
            errs.contains(&format!(
                "routes[0].path: route \"shadowed\": \"{path}\" is an inline endpoint ({key} = "
            )),
            "{path}: {errs}"
        );
    }
    // A path next to them, and a prefix over them (the endpoints still
    // answer first), are fine.
    assert!(cfg("[[routes]]\npath = \"/oauth/tokens\"\nupstream = \"tiles\"\npublic = true\n").is_ok());
    assert!(cfg("[[routes]]\nprefix = \"/\"\nupstream = \"tiles\"\npublic = true\n").is_ok());
}

#[test]
fn a_moved_inline_endpoint_is_checked_at_its_configured_path() {
    let moved = "[endpoints]\nintrospect = \"/tiles/introspect\"\n";
    let errs = cfg(&format!(
        "{moved}[[routes]]\npath = \"/tiles/introspect\"\nupstream = \"tiles\"\npublic = true\n"
    ))
    .unwrap_err()
    .join("\n");
    assert!(
        errs.contains("\"/tiles/introspect\" is an inline endpoint (endpoints.introspect = \"/tiles/introspect\")"),
        "{errs}"
    );
    let default_path = cfg("").unwrap().endpoints.introspect;
    assert!(cfg(&format!(
        "{moved}[[routes]]\npath = \"{default_path}\"\nupstream = \"tiles\"\npublic = true\n"
    ))
    .is_ok());
}

#[test]
fn streams_end_with_their_token_only_on_token_routes_and_when_asked() {
    let c = cfg("[[routes]]\nprefix = \"/a/\"\nupstream = \"tiles\"\n[[routes]]\nprefix = \"/b/\"\nupstream = \"tiles\"\nend_streams_with_token = true\n").unwrap();
    assert!(!c.routes[0].end_streams_with_token, "off by default");
    assert!(c.routes[1].end_streams_with_token);
    let errs =
        cfg("[[routes]]\nprefix = \"/p/\"\nupstream = \"tiles\"\npublic = true\nend_streams_with_token = true\n")
            .unwrap_err()
            .join("\n");
    assert!(
        errs.contains("routes[0].end_streams_with_token: only token routes"),
        "{errs}"
    );
}

#[test]
fn tile_routes_name_parameters_of_their_path() {
    let route = |extra: &str| {
        cfg(&format!(
            "[[routes]]\npath = \"/tiles/{{layer}}/{{z}}/{{x}}/{{y}}.pbf\"\nupstream = \"tiles\"\n{extra}\n"
        ))
    };
    let c = route("tiles = { z = \"z\", x = \"x\", y = \"y\", layer = \"layer\", scheme = \"tms\" }\nout_of_grant = \"no_content\"\nshared_cache = true").unwrap();
    let t = c.routes[0].tiles.as_ref().unwrap();
    assert_eq!(t.scheme, crate::routing::TileScheme::Tms);
    assert_eq!(t.out_of_grant, crate::routing::OutOfGrant::NoContent);
    assert!(c.routes[0].shared_cache);
    let c = route("tiles = { z = \"z\", x = \"x\", y = \"y\" }").unwrap();
    let t = c.routes[0].tiles.as_ref().unwrap();
    assert_eq!(
        (t.scheme, t.out_of_grant),
        (crate::routing::TileScheme::Xyz, crate::routing::OutOfGrant::NotFound),
        "defaults"
    );
    let bad = |extra: &str| route(extra).unwrap_err().join("\n");
    let e = bad("tiles = { z = \"zoom\", x = \"x\", y = \"y\" }");
    assert!(
        e.contains("routes[0].tiles") && e.contains("\"zoom\" is not a parameter") && e.contains("layer, z, x, y"),
        "{e}"
    );
    assert!(bad("tiles = { z = \"z\", x = \"x\", y = \"y\", scheme = \"wmts\" }").contains("routes[0].tiles.scheme"));
    assert!(
        bad("tiles = { z = \"z\", x = \"x\", y = \"y\" }\nout_of_grant = \"teapot\"")
            .contains("routes[0].out_of_grant")
    );
    assert!(bad("out_of_grant = \"forbidden\"").contains("needs a tiles table"));
    assert!(bad("tiles = { z = \"z\", x = \"x\", y = \"y\", zoom = \"z\" }").contains("zoom"));
    let e = cfg("[[routes]]\nprefix = \"/t/\"\nupstream = \"tiles\"\ntiles = { z = \"z\", x = \"x\", y = \"y\" }\n")
        .unwrap_err()
        .join("\n");
    assert!(e.contains("not a prefix"), "{e}");
    let e = cfg("[[routes]]\npath = \"/t/{z}/{x}/{y}\"\nupstream = \"tiles\"\npublic = true\ntiles = { z = \"z\", x = \"x\", y = \"y\" }\n")
        .unwrap_err()
        .join("\n");
    assert!(e.contains("public route reads no token"), "{e}");
}

#[test]
fn origin_binding_keys() {
    let route = |extra: &str| {
        cfg(&format!(
            "[[routes]]\nprefix = \"/o/\"\nupstream = \"tiles\"\n{extra}\n"
        ))
    };
    let c = route("bind_origin = true").unwrap();
    assert!(
        c.routes[0].bind_origin && !c.routes[0].allow_missing_origin,
        "refuse by default"
    );
    assert!(route("bind_origin = true\nmissing_origin = \"allow\"").unwrap().routes[0].allow_missing_origin);
    let bad = |extra: &str| route(extra).unwrap_err().join("\n");
    assert!(bad("bind_origin = true\nmissing_origin = \"maybe\"").contains("routes[0].missing_origin"));
    assert!(bad("missing_origin = \"allow\"").contains("needs bind_origin"));
    assert!(bad("public = true\nbind_origin = true").contains("routes[0].bind_origin"));
}

#[test]
fn workers_are_shared_by_default_and_per_core_on_request() {
    assert_eq!(cfg("").unwrap().server.workers, Workers::Shared);
    assert_eq!(
        cfg("[server]\nworkers = \"shared\"\n").unwrap().server.workers,
        Workers::Shared
    );
    let two = cfg("[server]\nworkers = 2\n").unwrap().server.workers;
    assert_eq!(two, Workers::PerCore(std::num::NonZeroUsize::new(2).unwrap()));
    assert_eq!(two.count(), 2);
    let cores = std::thread::available_parallelism().unwrap();
    assert_eq!(
        cfg("[server]\nworkers = \"per-core\"\n").unwrap().server.workers,
        Workers::PerCore(cores)
    );
}

#[test]
fn workers_refuse_zero_negative_too_many_and_unknown_words() {
    let all = cfg("[server]\nworkers = 0\n").unwrap_err().join("\n");
    assert!(
        all.contains("server.workers: 0 workers would serve nothing: use at least 1, or \"shared\""),
        "{all}"
    );
    let all = cfg("[server]\nworkers = -3\n").unwrap_err().join("\n");
    assert!(all.contains("server.workers: -3 workers would serve nothing"), "{all}");
    let all = cfg("[server]\nworkers = 5000\n").unwrap_err().join("\n");
    assert!(all.contains("server.workers: 5000 workers is more than 1024"), "{all}");
    let all = cfg("[server]\nworkers = \"percore\"\n").unwrap_err().join("\n");
    assert!(
        all.contains(
            "server.workers: \"percore\" is not a worker model: use \"shared\", \"per-core\" or a number of workers"
        ),
        "{all}"
    );
    let all = cfg("[server]\nworkers = true\n").unwrap_err().join("\n");
    assert!(
        all.contains("expected \"shared\", \"per-core\" or a number of workers"),
        "{all}"
    );
}
