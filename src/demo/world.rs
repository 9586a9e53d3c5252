//! The demo's map data: Natural Earth's 1:110m countries (public domain), as
//! redistributed in TopoJSON by the npm package `world-atlas` 2.0.2 (ISC; see
//! `README.md` and `world-atlas-LICENSE` beside this file), cut into Mapbox
//! Vector Tiles on request.
//!
//! Layers of every tile, in this order (extent 4096, 64 units of buffer; a
//! layer with nothing in the tile is left out, so a tile in the open ocean is
//! empty):
//! - `countries`: one multipolygon feature per country, `name`, `id` (ISO
//!   3166-1 numeric, when it has one) and `colour` (0‥5, neighbours differ);
//! - `land`: polygons, the countries merged (coastlines as their outline);
//! - `boundaries`: the borders between two countries, as lines.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::Value;

const TOPOJSON: &str = include_str!("countries-110m.json");
/// Tile units per tile side.
pub const EXTENT: u32 = 4096;
/// Tile units kept around the tile, so lines and fills join across tiles.
const BUFFER: f64 = 64.0;
/// Web Mercator's latitude limit.
const MAX_LAT: f64 = 85.051_128_78;

type Pt = (f64, f64);

/// A polygon in world coordinates (Web Mercator scaled to 0‥1, y down): its
/// exterior ring, then its holes.
struct Polygon {
    rings: Vec<Vec<Pt>>,
    bbox: [f64; 4],
}

struct Country {
    name: String,
    id: Option<String>,
    colour: u64,
    polygons: Vec<Polygon>,
    bbox: [f64; 4],
}

struct Line {
    points: Vec<Pt>,
    bbox: [f64; 4],
}

struct World {
    land: Vec<Polygon>,
    countries: Vec<Country>,
    boundaries: Vec<Line>,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| parse(TOPOJSON).expect("the vendored TopoJSON parses"))
}

/// Longitude, latitude (degrees) to Web Mercator world coordinates in 0‥1.
fn project(lon: f64, lat: f64) -> Pt {
    let lat = lat.clamp(-MAX_LAT, MAX_LAT).to_radians();
    let x = (lon + 180.0) / 360.0;
    let y = (1.0 - (lat.tan() + 1.0 / lat.cos()).ln() / std::f64::consts::PI) / 2.0;
    (x.clamp(0.0, 1.0), y.clamp(0.0, 1.0))
}

fn bbox<'a>(points: impl IntoIterator<Item = &'a Pt>) -> [f64; 4] {
    let mut b = [f64::MAX, f64::MAX, f64::MIN, f64::MIN];
    for &(x, y) in points {
        b = [b[0].min(x), b[1].min(y), b[2].max(x), b[3].max(y)];
    }
    b
}

fn union(a: [f64; 4], b: [f64; 4]) -> [f64; 4] {
    [a[0].min(b[0]), a[1].min(b[1]), a[2].max(b[2]), a[3].max(b[3])]
}

fn overlaps(a: [f64; 4], b: [f64; 4]) -> bool {
    a[0] <= b[2] && b[0] <= a[2] && a[1] <= b[3] && b[1] <= a[3]
}

/// A geometry's polygons as lists of rings of arc indexes (TopoJSON:
/// `!i` is arc `i` reversed); anything but (Multi)Polygon has none.
fn polygon_arcs(geometry: &Value) -> Vec<Vec<Vec<i64>>> {
    let rings = |v: &Value| -> Vec<Vec<i64>> {
        v.as_array()
            .map(|rs| {
                rs.iter()
                    .map(|r| {
                        r.as_array()
                            .map(|a| a.iter().filter_map(Value::as_i64).collect())
                            .unwrap_or_default()
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    match geometry["type"].as_str() {
        Some("Polygon") => vec![rings(&geometry["arcs"])],
        Some("MultiPolygon") => geometry["arcs"]
            .as_array()
            .map(|ps| ps.iter().map(rings).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

fn arc_index(i: i64) -> usize {
    if i >= 0 {
        i as usize
    } else {
        (!i) as usize
    }
}

fn ring(arcs: &[Vec<Pt>], indexes: &[i64]) -> Vec<Pt> {
    let mut out: Vec<Pt> = Vec::new();
    for &i in indexes {
        let Some(arc) = arcs.get(arc_index(i)) else {
            continue;
        };
        let skip = usize::from(!out.is_empty());
        if i >= 0 {
            out.extend(arc.iter().skip(skip));
        } else {
            out.extend(arc.iter().rev().skip(skip));
        }
    }
    out
}

/// Make a ring continuous across the antimeridian (x then leaves 0‥1): a
/// step of more than half the world is the antimeridian, not a real edge
/// (unless it runs along a pole's edge of the map). A ring that crosses it
/// once goes round a pole: it is closed along that pole's edge of the map.
fn unwrap_ring(points: &[Pt]) -> Vec<Pt> {
    let mut out: Vec<Pt> = Vec::with_capacity(points.len() + 2);
    let mut shift = 0.0;
    for (i, &(x, y)) in points.iter().enumerate() {
        // An edge along the map's top or bottom (a pole) is a real edge.
        let (px, py) = points[i.saturating_sub(1)];
        let at_pole = (y <= 0.0 && py <= 0.0) || (y >= 1.0 && py >= 1.0);
        if i > 0 && !at_pole {
            let d = x - px;
            if d > 0.5 {
                shift -= 1.0;
            } else if d < -0.5 {
                shift += 1.0;
            }
        }
        out.push((x + shift, y));
    }
    if shift != 0.0 {
        if let (Some(&first), Some(&last)) = (out.first(), out.last()) {
            let mean_y = out.iter().map(|p| p.1).sum::<f64>() / out.len() as f64;
            let pole = if mean_y > 0.5 { 1.0 } else { 0.0 };
            out.extend([(last.0, pole), (first.0, pole)]);
        }
    }
    out
}

/// Lines cut where they cross the antimeridian.
fn split_line(points: &[Pt]) -> Vec<Vec<Pt>> {
    let mut parts: Vec<Vec<Pt>> = vec![Vec::new()];
    for (i, &p) in points.iter().enumerate() {
        if i > 0 && (p.0 - points[i - 1].0).abs() > 0.5 {
            parts.push(Vec::new());
        }
        parts.last_mut().into_iter().for_each(|l| l.push(p));
    }
    parts.retain(|p| p.len() >= 2);
    parts
}

fn polygons(arcs: &[Vec<Pt>], geometry: &Value) -> Vec<Polygon> {
    let mut out = Vec::new();
    for p in polygon_arcs(geometry) {
        let rings: Vec<Vec<Pt>> = p.iter().map(|r| unwrap_ring(&ring(arcs, r))).collect();
        if rings.first().is_none_or(|r| r.len() < 3) {
            continue;
        }
        let bbox = bbox(rings.first().into_iter().flatten());
        // A polygon reaching past the antimeridian shows on the other side too.
        for dx in [-1.0, 1.0] {
            if (dx < 0.0 && bbox[2] > 1.0) || (dx > 0.0 && bbox[0] < 0.0) {
                let moved = rings
                    .iter()
                    .map(|r| r.iter().map(|&(x, y)| (x + dx, y)).collect())
                    .collect();
                out.push(Polygon {
                    rings: moved,
                    bbox: [bbox[0] + dx, bbox[1], bbox[2] + dx, bbox[3]],
                });
            }
        }
        out.push(Polygon { rings, bbox });
    }
    out
}

fn parse(src: &str) -> Result<World, String> {
    let v: Value = serde_json::from_str(src).map_err(|e| e.to_string())?;
    let num = |v: &Value| v.as_f64().ok_or("transform: not a number");
    let t = &v["transform"];
    let (sx, sy) = (num(&t["scale"][0])?, num(&t["scale"][1])?);
    let (tx, ty) = (num(&t["translate"][0])?, num(&t["translate"][1])?);
    // Arcs are quantized and delta-encoded.
    let arcs: Vec<Vec<Pt>> = v["arcs"]
        .as_array()
        .ok_or("no arcs")?
        .iter()
        .map(|arc| {
            let (mut x, mut y) = (0i64, 0i64);
            arc.as_array()
                .map(|ps| {
                    ps.iter()
                        .map(|p| {
                            x += p[0].as_i64().unwrap_or(0);
                            y += p[1].as_i64().unwrap_or(0);
                            project(x as f64 * sx + tx, y as f64 * sy + ty)
                        })
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect();
    let geometries = |object: &str| {
        v["objects"][object]["geometries"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };

    let mut countries = Vec::new();
    // Which countries each arc belongs to: an arc of two is a border.
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); arcs.len()];
    for g in geometries("countries") {
        let polys = polygons(&arcs, &g);
        if polys.is_empty() {
            continue;
        }
        let ci = countries.len();
        for i in polygon_arcs(&g).iter().flatten().flatten() {
            if let Some(u) = users.get_mut(arc_index(*i)) {
                if !u.contains(&ci) {
                    u.push(ci);
                }
            }
        }
        countries.push(Country {
            name: g["properties"]["name"].as_str().unwrap_or("").to_owned(),
            id: g["id"].as_str().map(str::to_owned),
            colour: 0,
            bbox: polys.iter().map(|p| p.bbox).reduce(union).unwrap_or_default(),
            polygons: polys,
        });
    }
    let mut neighbours: Vec<Vec<usize>> = vec![Vec::new(); countries.len()];
    let mut boundaries = Vec::new();
    for (a, u) in users.iter().enumerate() {
        if let [c1, c2] = u[..] {
            neighbours[c1].push(c2);
            neighbours[c2].push(c1);
            for points in split_line(&arcs[a]) {
                boundaries.push(Line {
                    bbox: bbox(&points),
                    points,
                });
            }
        }
    }
    // Greedy colouring, most neighbours first, so that neighbours differ.
    let mut order: Vec<usize> = (0..countries.len()).collect();
    order.sort_by_key(|&c| std::cmp::Reverse(neighbours[c].len()));
    let mut colour: Vec<Option<u64>> = vec![None; countries.len()];
    for c in order {
        let taken: Vec<u64> = neighbours[c].iter().filter_map(|&n| colour[n]).collect();
        colour[c] = (0..).find(|k| !taken.contains(k));
    }
    for (c, k) in countries.iter_mut().zip(colour) {
        c.colour = k.unwrap_or(0);
    }
    let land = geometries("land").iter().flat_map(|g| polygons(&arcs, g)).collect();
    Ok(World {
        land,
        countries,
        boundaries,
    })
}

// --- clipping (tile coordinates, f64) ---

/// Sutherland–Hodgman against the square [lo, hi]²; the ring is open (its
/// last point is not its first).
fn clip_ring(ring: &[Pt], lo: f64, hi: f64) -> Vec<Pt> {
    let mut out: Vec<Pt> = ring.to_vec();
    // (axis, bound, keep the side >= bound?)
    for (axis, bound, above) in [(0, lo, true), (0, hi, false), (1, lo, true), (1, hi, false)] {
        if out.is_empty() {
            break;
        }
        let inside = |p: &Pt| {
            let c = if axis == 0 { p.0 } else { p.1 };
            if above {
                c >= bound
            } else {
                c <= bound
            }
        };
        let cross = |a: &Pt, b: &Pt| {
            let (ca, cb) = if axis == 0 { (a.0, b.0) } else { (a.1, b.1) };
            let t = (bound - ca) / (cb - ca);
            let p = (a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1));
            if axis == 0 {
                (bound, p.1)
            } else {
                (p.0, bound)
            }
        };
        let input = std::mem::take(&mut out);
        let mut prev = input[input.len() - 1];
        for &cur in &input {
            match (inside(&prev), inside(&cur)) {
                (true, true) => out.push(cur),
                (true, false) => out.push(cross(&prev, &cur)),
                (false, true) => {
                    out.push(cross(&prev, &cur));
                    out.push(cur);
                }
                (false, false) => {}
            }
            prev = cur;
        }
    }
    out
}

/// Liang–Barsky: the part of segment a→b inside [lo, hi]², if any.
fn clip_segment(a: Pt, b: Pt, lo: f64, hi: f64) -> Option<(Pt, Pt)> {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (p, q) in [(-dx, a.0 - lo), (dx, hi - a.0), (-dy, a.1 - lo), (dy, hi - a.1)] {
        if p == 0.0 {
            if q < 0.0 {
                return None;
            }
        } else {
            let r = q / p;
            if p < 0.0 {
                t0 = t0.max(r);
            } else {
                t1 = t1.min(r);
            }
            if t0 > t1 {
                return None;
            }
        }
    }
    Some(((a.0 + t0 * dx, a.1 + t0 * dy), (a.0 + t1 * dx, a.1 + t1 * dy)))
}

type IPt = (i32, i32);

/// Round to tile units and drop repeated points.
fn quantize(points: impl IntoIterator<Item = Pt>) -> Vec<IPt> {
    let mut out: Vec<IPt> = Vec::new();
    for (x, y) in points {
        let p = (x.round() as i32, y.round() as i32);
        if out.last() != Some(&p) {
            out.push(p);
        }
    }
    out
}

/// Twice the signed area by the surveyor's formula (y down: positive is
/// clockwise on screen, an exterior ring in MVT).
fn area2(ring: &[IPt]) -> i64 {
    let n = ring.len();
    (0..n)
        .map(|i| {
            let (a, b) = (ring[i], ring[(i + 1) % n]);
            a.0 as i64 * b.1 as i64 - b.0 as i64 * a.1 as i64
        })
        .sum()
}

/// Where one tile sits in world coordinates.
struct TileFrame {
    scale: f64,
    x0: f64,
    y0: f64,
    /// The buffered tile in world coordinates.
    bbox: [f64; 4],
}

impl TileFrame {
    fn new(z: u32, x: u32, y: u32) -> TileFrame {
        let n = f64::from(1u32 << z.min(30));
        let b = BUFFER / f64::from(EXTENT);
        TileFrame {
            scale: n * f64::from(EXTENT),
            x0: f64::from(x),
            y0: f64::from(y),
            bbox: [
                (f64::from(x) - b) / n,
                (f64::from(y) - b) / n,
                (f64::from(x) + 1.0 + b) / n,
                (f64::from(y) + 1.0 + b) / n,
            ],
        }
    }
    fn to_tile(&self, p: &Pt) -> Pt {
        let e = f64::from(EXTENT);
        (p.0 * self.scale - self.x0 * e, p.1 * self.scale - self.y0 * e)
    }
}

/// A polygon clipped to the buffered tile: rings in MVT order and winding
/// (exterior positive), or nothing when its exterior is gone.
fn clip_polygon(p: &Polygon, f: &TileFrame) -> Option<Vec<Vec<IPt>>> {
    if !overlaps(p.bbox, f.bbox) {
        return None;
    }
    let (lo, hi) = (-BUFFER, f64::from(EXTENT) + BUFFER);
    let mut out = Vec::new();
    for (i, r) in p.rings.iter().enumerate() {
        let tile: Vec<Pt> = r.iter().map(|q| f.to_tile(q)).collect();
        let mut q = quantize(clip_ring(&tile, lo, hi));
        while q.len() > 1 && q.first() == q.last() {
            q.pop();
        }
        let a = if q.len() >= 3 { area2(&q) } else { 0 };
        if a == 0 {
            if i == 0 {
                return None;
            }
            continue;
        }
        if (i == 0) != (a > 0) {
            q.reverse();
        }
        out.push(q);
    }
    Some(out)
}

fn clip_line(l: &Line, f: &TileFrame) -> Vec<Vec<IPt>> {
    if !overlaps(l.bbox, f.bbox) {
        return Vec::new();
    }
    let (lo, hi) = (-BUFFER, f64::from(EXTENT) + BUFFER);
    let mut parts: Vec<Vec<Pt>> = Vec::new();
    let pts: Vec<Pt> = l.points.iter().map(|p| f.to_tile(p)).collect();
    for w in pts.windows(2) {
        let Some((a, b)) = clip_segment(w[0], w[1], lo, hi) else {
            continue;
        };
        match parts.last_mut() {
            Some(cur) if cur.last() == Some(&a) => cur.push(b),
            _ => parts.push(vec![a, b]),
        }
    }
    parts.into_iter().map(quantize).filter(|p| p.len() >= 2).collect()
}

// --- Mapbox Vector Tile encoding (protobuf) ---

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}
fn key(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, (u64::from(field) << 3) | u64::from(wire));
}
fn bytes_field(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    key(out, field, 2);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}
fn zig(v: i32) -> u64 {
    ((v << 1) ^ (v >> 31)) as u32 as u64
}
fn packed(out: &mut Vec<u8>, field: u32, vals: &[u64]) {
    let mut tmp = Vec::new();
    for v in vals {
        varint(&mut tmp, *v);
    }
    bytes_field(out, field, &tmp);
}

const POLYGON: u64 = 3;
const LINESTRING: u64 = 2;

#[derive(Clone, PartialEq)]
enum Val {
    Str(String),
    Uint(u64),
}

/// Geometry commands for rings (closed) or lines (open), one cursor for all.
fn commands(parts: &[Vec<IPt>], close: bool) -> Vec<u64> {
    let mut out = Vec::new();
    let mut cur = (0i32, 0i32);
    for part in parts {
        let mut step = |out: &mut Vec<u64>, p: IPt| {
            out.push(zig(p.0 - cur.0));
            out.push(zig(p.1 - cur.1));
            cur = p;
        };
        out.push(1 << 3 | 1); // MoveTo × 1
        step(&mut out, part[0]);
        out.push(((part.len() as u64 - 1) << 3) | 2); // LineTo × n-1
        for &p in &part[1..] {
            step(&mut out, p);
        }
        if close {
            out.push(1 << 3 | 7); // ClosePath
        }
    }
    out
}

struct LayerWriter {
    name: &'static str,
    features: Vec<u8>,
    count: u64,
    keys: Vec<&'static str>,
    values: Vec<Val>,
}

impl LayerWriter {
    fn new(name: &'static str) -> LayerWriter {
        LayerWriter {
            name,
            features: Vec::new(),
            count: 0,
            keys: Vec::new(),
            values: Vec::new(),
        }
    }
    fn add(&mut self, gtype: u64, geometry: &[u64], props: &[(&'static str, Val)]) {
        let mut tags = Vec::new();
        for (k, v) in props {
            let ki = self.keys.iter().position(|x| x == k).unwrap_or_else(|| {
                self.keys.push(k);
                self.keys.len() - 1
            });
            let vi = self.values.iter().position(|x| x == v).unwrap_or_else(|| {
                self.values.push(v.clone());
                self.values.len() - 1
            });
            tags.extend([ki as u64, vi as u64]);
        }
        self.count += 1;
        let mut f = Vec::new();
        key(&mut f, 1, 0);
        varint(&mut f, self.count); // id
        if !tags.is_empty() {
            packed(&mut f, 2, &tags);
        }
        key(&mut f, 3, 0);
        varint(&mut f, gtype);
        packed(&mut f, 4, geometry);
        bytes_field(&mut self.features, 2, &f);
    }
    /// Append the layer to `tile` unless it has no feature.
    fn finish(self, tile: &mut Vec<u8>) {
        if self.count == 0 {
            return;
        }
        let mut layer = Vec::new();
        key(&mut layer, 15, 0);
        varint(&mut layer, 2); // version
        bytes_field(&mut layer, 1, self.name.as_bytes());
        layer.extend_from_slice(&self.features);
        for k in &self.keys {
            bytes_field(&mut layer, 3, k.as_bytes());
        }
        for v in &self.values {
            let mut value = Vec::new();
            match v {
                Val::Str(s) => bytes_field(&mut value, 1, s.as_bytes()),
                Val::Uint(u) => {
                    key(&mut value, 5, 0);
                    varint(&mut value, *u);
                }
            }
            bytes_field(&mut layer, 4, &value);
        }
        key(&mut layer, 5, 0);
        varint(&mut layer, u64::from(EXTENT));
        bytes_field(tile, 3, &layer);
    }
}

/// The vector tile `z/x/y` (layers `countries`, `land`, `boundaries`, in
/// this order: fills under lines for renderers that follow it); empty
/// (no layer) where the tile has no land. `z` at most 30.
pub fn tile(z: u32, x: u32, y: u32) -> Vec<u8> {
    let w = world();
    let f = TileFrame::new(z, x, y);
    let mut tile = Vec::new();

    let mut countries = LayerWriter::new("countries");
    for c in w.countries.iter().filter(|c| overlaps(c.bbox, f.bbox)) {
        let parts: Vec<Vec<IPt>> = c
            .polygons
            .iter()
            .filter_map(|p| clip_polygon(p, &f))
            .flatten()
            .collect();
        if parts.is_empty() {
            continue;
        }
        let mut props = vec![("name", Val::Str(c.name.clone())), ("colour", Val::Uint(c.colour))];
        if let Some(id) = &c.id {
            props.push(("id", Val::Str(id.clone())));
        }
        countries.add(POLYGON, &commands(&parts, true), &props);
    }
    countries.finish(&mut tile);

    let mut land = LayerWriter::new("land");
    let parts: Vec<Vec<IPt>> = w.land.iter().filter_map(|p| clip_polygon(p, &f)).flatten().collect();
    if !parts.is_empty() {
        land.add(POLYGON, &commands(&parts, true), &[]);
    }
    land.finish(&mut tile);

    let mut boundaries = LayerWriter::new("boundaries");
    let parts: Vec<Vec<IPt>> = w.boundaries.iter().flat_map(|l| clip_line(l, &f)).collect();
    if !parts.is_empty() {
        boundaries.add(LINESTRING, &commands(&parts, false), &[]);
    }
    boundaries.finish(&mut tile);
    tile
}

/// Tiles already cut, keyed by `z/x/y`; dropped whole when it gets large.
pub fn cached_tile(z: u32, x: u32, y: u32) -> bytes::Bytes {
    type Cache = std::sync::Mutex<HashMap<(u32, u32, u32), bytes::Bytes>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(b) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&(z, x, y)) {
        return b.clone();
    }
    let b = bytes::Bytes::from(tile(z, x, y));
    let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
    if c.len() >= 10_000 {
        c.clear();
    }
    c.insert((z, x, y), b.clone());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A decoded feature: geometry type, tags as strings, rings or lines.
    type Feature = (u64, HashMap<String, String>, Vec<Vec<IPt>>);

    /// A decoded layer: name and features.
    struct Layer {
        name: String,
        extent: u64,
        features: Vec<Feature>,
    }

    fn read_varint(b: &[u8], i: &mut usize) -> u64 {
        let (mut v, mut s) = (0u64, 0);
        loop {
            let byte = b[*i];
            *i += 1;
            v |= u64::from(byte & 0x7f) << s;
            if byte < 0x80 {
                return v;
            }
            s += 7;
        }
    }

    /// Fields of one protobuf message: (field, varint value or bytes).
    fn fields(b: &[u8]) -> Vec<(u64, u64, &[u8])> {
        let (mut i, mut out) = (0, Vec::new());
        while i < b.len() {
            let k = read_varint(b, &mut i);
            match k & 7 {
                0 => out.push((k >> 3, read_varint(b, &mut i), &b[0..0])),
                2 => {
                    let n = read_varint(b, &mut i) as usize;
                    out.push((k >> 3, 0, &b[i..i + n]));
                    i += n;
                }
                w => panic!("wire type {w}"),
            }
        }
        out
    }

    fn packed_vals(b: &[u8]) -> Vec<u64> {
        let (mut i, mut out) = (0, Vec::new());
        while i < b.len() {
            out.push(read_varint(b, &mut i));
        }
        out
    }

    fn unzig(v: u64) -> i32 {
        ((v >> 1) as i32) ^ -((v & 1) as i32)
    }

    fn geometry(cmds: &[u64]) -> Vec<Vec<IPt>> {
        let (mut i, mut cur, mut parts) = (0, (0i32, 0i32), Vec::<Vec<IPt>>::new());
        while i < cmds.len() {
            let (id, n) = (cmds[i] & 7, cmds[i] >> 3);
            i += 1;
            if id == 7 {
                continue;
            }
            for _ in 0..n {
                cur = (cur.0 + unzig(cmds[i]), cur.1 + unzig(cmds[i + 1]));
                i += 2;
                if id == 1 {
                    parts.push(Vec::new());
                }
                parts.last_mut().unwrap().push(cur);
            }
        }
        parts
    }

    fn decode(t: &[u8]) -> Vec<Layer> {
        fields(t)
            .into_iter()
            .filter(|f| f.0 == 3)
            .map(|(_, _, lb)| {
                let lf = fields(lb);
                let keys: Vec<String> = lf
                    .iter()
                    .filter(|f| f.0 == 3)
                    .map(|f| String::from_utf8(f.2.to_vec()).unwrap())
                    .collect();
                let values: Vec<String> = lf
                    .iter()
                    .filter(|f| f.0 == 4)
                    .map(|f| {
                        let v = &fields(f.2)[0];
                        if v.0 == 1 {
                            String::from_utf8(v.2.to_vec()).unwrap()
                        } else {
                            v.1.to_string()
                        }
                    })
                    .collect();
                let features = lf
                    .iter()
                    .filter(|f| f.0 == 2)
                    .map(|f| {
                        let ff = fields(f.2);
                        let gtype = ff.iter().find(|x| x.0 == 3).unwrap().1;
                        let tags = ff
                            .iter()
                            .find(|x| x.0 == 2)
                            .map(|x| packed_vals(x.2))
                            .unwrap_or_default();
                        let props = tags
                            .chunks(2)
                            .map(|kv| (keys[kv[0] as usize].clone(), values[kv[1] as usize].clone()))
                            .collect();
                        let geom = geometry(&packed_vals(ff.iter().find(|x| x.0 == 4).unwrap().2));
                        (gtype, props, geom)
                    })
                    .collect();
                Layer {
                    name: String::from_utf8(lf.iter().find(|f| f.0 == 1).unwrap().2.to_vec()).unwrap(),
                    extent: lf.iter().find(|f| f.0 == 5).unwrap().1,
                    features,
                }
            })
            .collect()
    }

    fn layer<'a>(layers: &'a [Layer], name: &str) -> &'a Layer {
        layers
            .iter()
            .find(|l| l.name == name)
            .unwrap_or_else(|| panic!("no layer {name}"))
    }

    /// The tile of zoom `z` holding (lon, lat).
    fn tile_at(z: u32, lon: f64, lat: f64) -> (u32, u32) {
        let (x, y) = project(lon, lat);
        let n = f64::from(1u32 << z);
        ((x * n) as u32, (y * n) as u32)
    }

    #[test]
    fn the_world_tile_has_land_every_country_and_borders() {
        let layers = decode(&tile(0, 0, 0));
        let names: Vec<&str> = layers.iter().map(|l| l.name.as_str()).collect();
        // In drawing order for renderers that follow the tile's (Leaflet.VectorGrid).
        assert_eq!(names, ["countries", "land", "boundaries"]);
        assert!(layers.iter().all(|l| l.extent == 4096));
        let land = layer(&layers, "land");
        assert_eq!(land.features.len(), 1);
        assert_eq!(land.features[0].0, POLYGON);
        // Dozens of land masses, each a real ring.
        let exteriors: Vec<&Vec<IPt>> = land.features[0].2.iter().filter(|r| area2(r) > 0).collect();
        assert!(exteriors.len() > 20, "{}", exteriors.len());
        let countries = layer(&layers, "countries");
        assert!(countries.features.len() > 150, "{}", countries.features.len());
        let named: Vec<&str> = countries.features.iter().map(|f| f.1["name"].as_str()).collect();
        for n in ["Switzerland", "Brazil", "Japan", "Australia", "Canada", "Antarctica"] {
            assert!(named.contains(&n), "{n} missing");
        }
        assert!(countries.features.iter().all(|f| f.0 == POLYGON));
        let boundaries = layer(&layers, "boundaries");
        assert_eq!(boundaries.features[0].0, LINESTRING);
        assert!(boundaries.features[0].2.len() > 100);
    }

    #[test]
    fn the_open_ocean_is_an_empty_tile() {
        // The South Pacific west of Chile, and the middle of the Atlantic.
        for (lon, lat) in [(-120.0, -40.0), (-35.0, 35.0)] {
            let (x, y) = tile_at(5, lon, lat);
            assert!(tile(5, x, y).is_empty(), "5/{x}/{y} has features");
        }
    }

    #[test]
    fn a_tile_over_switzerland_has_it_and_its_neighbours_with_borders_between() {
        let (x, y) = tile_at(6, 8.2, 46.8);
        let layers = decode(&tile(6, x, y));
        let countries = layer(&layers, "countries");
        let names: Vec<&str> = countries.features.iter().map(|f| f.1["name"].as_str()).collect();
        for n in ["Switzerland", "France", "Germany", "Italy", "Austria"] {
            assert!(names.contains(&n), "{n} not in {names:?}");
        }
        let ch = countries
            .features
            .iter()
            .find(|f| f.1["name"] == "Switzerland")
            .unwrap();
        assert_eq!(ch.1["id"], "756");
        // Switzerland lies inside the tile: no coordinate at the clip edge.
        assert!(ch.2[0]
            .iter()
            .all(|&(x, y)| (0..4096).contains(&x) && (0..4096).contains(&y)));
        let colour = |n: &str| countries.features.iter().find(|f| f.1["name"] == n).unwrap().1["colour"].clone();
        for n in ["France", "Germany", "Italy", "Austria"] {
            assert_ne!(colour("Switzerland"), colour(n), "{n} has Switzerland's colour");
        }
        assert!(!layer(&layers, "boundaries").features[0].2.is_empty());
        // Land covers the whole tile but its buffer reaches no sea: one
        // exterior ring, the clipped square.
        let land = &layer(&layers, "land").features[0].2;
        assert!(land.iter().all(|r| area2(r) != 0));
    }

    #[test]
    fn clipped_polygons_stay_inside_the_buffer_and_wind_as_mvt_wants() {
        for (z, x, y) in [(2, 2, 1), (4, 8, 5), (8, 133, 90), (14, 8190, 5450)] {
            let layers = decode(&tile(z, x, y));
            for l in layers.iter().filter(|l| l.name != "boundaries") {
                for f in &l.features {
                    let mut first = true;
                    for r in &f.2 {
                        assert!(r.len() >= 3);
                        assert!(r
                            .iter()
                            .all(|&(a, b)| (-64..=4160).contains(&a) && (-64..=4160).contains(&b)));
                        let a = area2(r);
                        assert_ne!(a, 0);
                        if first {
                            assert!(a > 0, "{z}/{x}/{y} {}: first ring winds backwards", l.name);
                            first = false;
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_deep_tile_inside_a_country_is_one_square() {
        // Central London at zoom 14 (the benchmarks' tile).
        let layers = decode(&tile(14, 8190, 5450));
        let land = &layer(&layers, "land").features[0].2;
        assert_eq!(land.len(), 1);
        let mut r = land[0].clone();
        r.sort();
        assert_eq!(r, [(-64, -64), (-64, 4160), (4160, -64), (4160, 4160)]);
        assert_eq!(layer(&layers, "countries").features[0].1["name"], "United Kingdom");
    }

    #[test]
    fn nothing_spans_the_world_at_the_antimeridian() {
        // Russia and Fiji cross it, Antarctica goes round the pole: no edge
        // may jump across the map (it would draw a line around the world).
        let w = world();
        let rings = w
            .land
            .iter()
            .chain(w.countries.iter().flat_map(|c| &c.polygons))
            .flat_map(|p| &p.rings);
        for r in rings {
            for (a, b) in r.iter().zip(r.iter().cycle().skip(1)) {
                let along_a_pole = a.1 == b.1 && (a.1 <= 0.0 || a.1 >= 1.0);
                assert!(along_a_pole || (a.0 - b.0).abs() < 0.5, "edge {a:?} -> {b:?}");
            }
        }
        for l in &w.boundaries {
            assert!(l.points.windows(2).all(|s| (s[0].0 - s[1].0).abs() < 0.5));
        }
        // Chukotka shows at both edges of the world tile, and the top
        // tiles of Russia have no horizontal line through them.
        let layers = decode(&tile(0, 0, 0));
        let russia = layer(&layers, "countries")
            .features
            .iter()
            .find(|f| f.1["name"] == "Russia")
            .unwrap();
        let xs: Vec<i32> = russia.2.iter().flatten().map(|p| p.0).collect();
        assert!(xs.iter().any(|&x| x < 100) && xs.iter().any(|&x| x > 4000));
        // Antarctica fills the bottom of the map: the world tile's last row.
        let antarctica = layer(&layers, "countries")
            .features
            .iter()
            .find(|f| f.1["name"] == "Antarctica")
            .unwrap();
        let bottom: Vec<i32> = antarctica
            .2
            .iter()
            .flatten()
            .filter(|p| p.1 >= 4096)
            .map(|p| p.0)
            .collect();
        assert!(
            bottom.iter().any(|&x| x <= 0) && bottom.iter().any(|&x| x >= 4096),
            "{bottom:?}"
        );
    }

    #[test]
    fn cached_tiles_are_the_same_bytes() {
        assert_eq!(cached_tile(3, 4, 2), tile(3, 4, 2));
        assert_eq!(cached_tile(3, 4, 2), cached_tile(3, 4, 2));
    }
}
