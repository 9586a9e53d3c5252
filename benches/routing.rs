//! Route matching: path normalisation plus the route table lookup, on a
//! table shaped like a real tile service's (templates, prefixes, hosts).
//!
//! cargo bench --bench routing

use criterion::{criterion_group, criterion_main, Criterion};
use http::Method;
use tilegate::routing::normalize;

fn bench(c: &mut Criterion) {
    let mut toml = String::from(
        "[scopes]\n\"tiles:read\" = \"r\"\n[[upstreams]]\nname = \"t\"\nbackends = [\"http://127.0.0.1:1\"]\n",
    );
    for (i, layer) in ["streets", "satellite", "terrain", "buildings", "poi"]
        .iter()
        .enumerate()
    {
        toml.push_str(&format!(
            "[[routes]]\npath = \"/{layer}/{{z}}/{{x}}/{{y}}.pbf\"\nmethods = [\"GET\"]\nupstream = \"t\"\nscopes = [\"tiles:read\"]\n[[routes]]\nprefix = \"/{layer}/styles/\"\nupstream = \"t\"\npublic = true\n[[routes]]\nhost = \"h{i}.example\"\nprefix = \"/{layer}/\"\nupstream = \"t\"\npublic = true\n"
        ));
    }
    toml.push_str("[[routes]]\npath = \"/tiles/{z}/{x}/{y}.pbf\"\nmethods = [\"GET\"]\nupstream = \"t\"\nscopes = [\"tiles:read\"]\n[[routes]]\nprefix = \"/\"\nupstream = \"t\"\npublic = true\n");
    let cfg = tilegate::config::from_str(&toml).unwrap();
    let table = &tilegate::routing::RouteTable::build(&cfg.routes).unwrap();
    c.bench_function("route match, template", |b| {
        b.iter(|| {
            let p = normalize(std::hint::black_box("/tiles/14/8190/5450.pbf")).unwrap();
            table.find(Some("maps.example"), &Method::GET, &p).unwrap().name.len()
        })
    });
    c.bench_function("route match, prefix fallback", |b| {
        b.iter(|| {
            let p = normalize(std::hint::black_box("/assets/fonts/Noto/0-255.pbf")).unwrap();
            table.find(None, &Method::GET, &p).unwrap().name.len()
        })
    });
    c.bench_function("route match, dot segments", |b| {
        b.iter(|| {
            let p = normalize(std::hint::black_box("/streets/../tiles/14/8190/5450.pbf")).unwrap();
            table.find(None, &Method::GET, &p).unwrap().name.len()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
