//! The tile-grant check on the request path (after the cache hit): zoom,
//! area (a few boxes, one across the antimeridian) and layer. Target:
//! under 100 ns.
//!
//!   cargo bench --bench grants

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use tilegate::grants::{Grant, GrantClaim, Tile};
use tilegate::routing::{OutOfGrant, TileRoute, TileScheme};

fn grant(json: &str) -> Grant {
    Grant::from_claim(&serde_json::from_str::<GrantClaim>(json).unwrap()).unwrap()
}

fn bench(c: &mut Criterion) {
    let one = grant(r#"{"minzoom":0,"maxzoom":14,"bounds":[[-11,35,30,60]],"layers":["basemap","poi"]}"#);
    let many = grant(
        r#"{"maxzoom":16,"bounds":[[-125,24,-66,49],[-11,35,30,60],[170,-50,-170,-30],[100,-45,155,-10]],"layers":["a","b","c","d","basemap"]}"#,
    );
    let inside = Tile::xyz(12, 2100, 1400).unwrap();
    let outside = Tile::xyz(12, 100, 3000).unwrap();
    let mut g = c.benchmark_group("grant check");
    g.bench_function("one box, inside", |b| {
        b.iter(|| black_box(&one).check(black_box(inside), Some("basemap")))
    });
    g.bench_function("one box, outside", |b| {
        b.iter(|| black_box(&one).check(black_box(outside), Some("basemap")))
    });
    g.bench_function("four boxes + antimeridian, last box", |b| {
        let t = Tile::xyz(12, 3700, 2300).unwrap();
        b.iter(|| black_box(&many).check(black_box(t), Some("basemap")))
    });
    g.bench_function("four boxes, outside all", |b| {
        b.iter(|| black_box(&many).check(black_box(outside), Some("basemap")))
    });
    // What a request pays on a tile route: the coordinates read from the
    // path by the route's own matcher, then the check.
    let route = TileRoute::new(
        "/tiles/{layer}/{z}/{x}/{y}.pbf",
        "z",
        "x",
        "y",
        Some("layer"),
        TileScheme::Xyz,
        OutOfGrant::NotFound,
    )
    .unwrap();
    g.bench_function("path to tile + one box check", |b| {
        b.iter(|| {
            let (t, layer) = route.tile_of(black_box("/tiles/basemap/12/2100/1400.pbf")).unwrap();
            black_box(&one).check(t, layer)
        })
    });
    g.bench_function("unlimited", |b| {
        let u = Grant::unlimited();
        b.iter(|| black_box(&u).check(black_box(inside), None))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
