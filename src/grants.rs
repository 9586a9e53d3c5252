//! Tile grants: which part of the tile pyramid a token may read.
//!
//! A grant limits up to three dimensions; a dimension left out is not
//! limited:
//!
//! - **zoom**: `minzoom..=maxzoom` (0–30);
//! - **area**: one or more boxes `[west, south, east, north]` in degrees
//!   (WGS 84 longitude and latitude, as TileJSON's `bounds`). A box whose
//!   west edge is east of its east edge crosses the antimeridian (RFC 7946
//!   §5.2). Latitudes beyond Web Mercator's ±85.0511° are clamped to it: a
//!   box that reaches a pole covers the pyramid's top or bottom row, a box
//!   wholly beyond that latitude covers no tile. Degrees are kept to seven
//!   decimals (about a centimetre);
//! - **layers**: names of tilesets or layers (`[A-Za-z0-9_.-]`, 1–64
//!   characters).
//!
//! In the gateway's tokens a grant is the claim `tiles`, e.g.
//! `{"minzoom":0,"maxzoom":14,"bounds":[[-11,35,30,60]],"layers":["basemap"]}`.
//!
//! A tile is inside the area when its extent and one of the boxes overlap
//! with a positive area: a tile straddling a box's edge is inside (it
//! holds granted data), a tile that only touches the edge is not. The
//! check works on the tile's own coordinates against the boxes projected
//! once, when the grant is built, so it costs a few comparisons per box.
//!
//! A grant is *within* another (a derived token's against its parent's)
//! when its zoom range lies inside the parent's, each of its boxes lies
//! inside one of the parent's boxes, and its layers are among the
//! parent's; a parent without a limit in a dimension accepts any. The rule
//! is conservative: a box that spans two adjoining parent boxes is not
//! within (ask for two boxes instead).

use serde::{Deserialize, Serialize};

/// Deepest zoom a grant or a tile may name.
pub const MAX_ZOOM: u8 = 30;
/// Most boxes in one grant.
pub const MAX_BOXES: usize = 16;
/// Most layer names in one grant.
pub const MAX_LAYERS: usize = 64;
/// Web Mercator's latitude limit, in degrees.
pub const MAX_LATITUDE: f64 = 85.051_128_779_806_59;

/// A grant as written in a token claim, a request body or a credential.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantClaim {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minzoom: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maxzoom: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bounds: Option<Vec<[f64; 4]>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers: Option<Vec<String>>,
}

/// Why a grant claim is not a grant.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GrantError {
    #[error("minzoom and maxzoom must be between 0 and {MAX_ZOOM}")]
    ZoomOutOfRange,
    #[error("minzoom must not be greater than maxzoom")]
    ZoomOrder,
    #[error("bounds must list between 1 and {MAX_BOXES} boxes")]
    BoxCount,
    #[error(
        "bounds[{0}] must be [west, south, east, north] in degrees: longitudes within ±180, latitudes within ±90, south below north, west and east apart"
    )]
    BadBox(usize),
    #[error("layers must list between 1 and {MAX_LAYERS} names")]
    LayerCount,
    #[error("layers[{0}] must be 1-64 characters of A-Z a-z 0-9 _ . -")]
    BadLayer(usize),
}

/// Which dimension of a grant a tile, or a narrower grant, falls outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dimension {
    Zoom,
    Area,
    Layer,
}

impl Dimension {
    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Zoom => "zoom",
            Dimension::Area => "area",
            Dimension::Layer => "layer",
        }
    }
}

/// A tile in XYZ order (row 0 at the north edge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tile {
    pub z: u8,
    pub x: u32,
    pub y: u32,
}

impl Tile {
    /// A tile, if `x` and `y` exist at zoom `z`.
    pub fn xyz(z: u32, x: u32, y: u32) -> Option<Tile> {
        if z > MAX_ZOOM as u32 {
            return None;
        }
        let n = 1u64 << z;
        ((x as u64) < n && (y as u64) < n).then_some(Tile { z: z as u8, x, y })
    }

    /// A tile addressed in TMS order (row 0 at the south edge).
    pub fn tms(z: u32, x: u32, y: u32) -> Option<Tile> {
        let t = Tile::xyz(z, x, y)?;
        let n = 1u32.wrapping_shl(z).wrapping_sub(1);
        // z <= 30 here, so n does not wrap.
        Some(Tile { y: n - y, ..t })
    }

    /// The tile's extent in the unit square of the projected world
    /// (x east from the antimeridian, y south from the top row), exact.
    #[inline]
    fn extent(self) -> Rect {
        let scale = 1.0 / (1u64 << self.z) as f64;
        Rect {
            x0: self.x as f64 * scale,
            y0: self.y as f64 * scale,
            x1: (self.x as f64 + 1.0) * scale,
            y1: (self.y as f64 + 1.0) * scale,
        }
    }
}

/// A box in the unit square of the projected world.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Rect {
    x0: f64,
    y0: f64,
    x1: f64,
    y1: f64,
}

impl Rect {
    /// Overlap with a positive area.
    #[inline]
    fn overlaps(&self, o: &Rect) -> bool {
        self.x0 < o.x1 && o.x0 < self.x1 && self.y0 < o.y1 && o.y0 < self.y1
    }
}

/// A box in degrees with `west < east` (an antimeridian box split in two).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Span {
    west: f64,
    south: f64,
    east: f64,
    north: f64,
}

impl Span {
    fn within(&self, o: &Span) -> bool {
        o.west <= self.west && self.east <= o.east && o.south <= self.south && self.north <= o.north
    }

    fn project(&self) -> Rect {
        Rect {
            x0: lon_to_x(self.west),
            x1: lon_to_x(self.east),
            // North is the top (smaller y).
            y0: lat_to_y(self.north),
            y1: lat_to_y(self.south),
        }
    }
}

/// Degrees to a multiple of 1e-7 (about a centimetre): short claims, and
/// the same grant after a trip through JSON.
fn quantize(v: f64) -> f64 {
    (v * 1e7).round() / 1e7
}

fn lon_to_x(lon: f64) -> f64 {
    (lon + 180.0) / 360.0
}

fn lat_to_y(lat: f64) -> f64 {
    let lat = lat.clamp(-MAX_LATITUDE, MAX_LATITUDE).to_radians();
    let y = 0.5 - (lat.tan() + 1.0 / lat.cos()).ln() / (2.0 * std::f64::consts::PI);
    y.clamp(0.0, 1.0)
}

/// A validated grant, with its area projected for the tile check.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    min_zoom: u8,
    max_zoom: u8,
    /// The boxes as given (what a claim carries).
    bounds: Option<Box<[[f64; 4]]>>,
    /// Each box, split at the antimeridian.
    spans: Box<[Span]>,
    /// The spans projected.
    rects: Box<[Rect]>,
    layers: Option<Box<[Box<str>]>>,
}

impl Default for Grant {
    fn default() -> Self {
        Grant::unlimited()
    }
}

impl Grant {
    /// No limit in any dimension.
    pub fn unlimited() -> Grant {
        Grant {
            min_zoom: 0,
            max_zoom: MAX_ZOOM,
            bounds: None,
            spans: Box::new([]),
            rects: Box::new([]),
            layers: None,
        }
    }

    /// Whether no dimension is limited.
    pub fn is_unlimited(&self) -> bool {
        self.min_zoom == 0 && self.max_zoom == MAX_ZOOM && self.bounds.is_none() && self.layers.is_none()
    }

    /// Validate a claim.
    pub fn from_claim(c: &GrantClaim) -> Result<Grant, GrantError> {
        let min_zoom = c.minzoom.unwrap_or(0);
        let max_zoom = c.maxzoom.unwrap_or(MAX_ZOOM);
        if min_zoom > MAX_ZOOM || max_zoom > MAX_ZOOM {
            return Err(GrantError::ZoomOutOfRange);
        }
        if min_zoom > max_zoom {
            return Err(GrantError::ZoomOrder);
        }
        let mut spans = Vec::new();
        if let Some(boxes) = &c.bounds {
            if boxes.is_empty() || boxes.len() > MAX_BOXES {
                return Err(GrantError::BoxCount);
            }
            for (i, b) in boxes.iter().enumerate() {
                let [west, south, east, north] = b.map(quantize);
                let lon_ok = |v: f64| v.is_finite() && (-180.0..=180.0).contains(&v);
                let lat_ok = |v: f64| v.is_finite() && (-90.0..=90.0).contains(&v);
                if !(lon_ok(west) && lon_ok(east) && lat_ok(south) && lat_ok(north)) || south >= north || west == east {
                    return Err(GrantError::BadBox(i));
                }
                let pieces = if west < east {
                    [
                        Some(Span {
                            west,
                            south,
                            east,
                            north,
                        }),
                        None,
                    ]
                } else {
                    // Across the antimeridian: the part up to 180° and the
                    // part from -180°, either of which may be empty.
                    [
                        (west < 180.0).then_some(Span {
                            west,
                            south,
                            east: 180.0,
                            north,
                        }),
                        (east > -180.0).then_some(Span {
                            west: -180.0,
                            south,
                            east,
                            north,
                        }),
                    ]
                };
                let before = spans.len();
                spans.extend(pieces.into_iter().flatten());
                if spans.len() == before {
                    return Err(GrantError::BadBox(i));
                }
            }
        }
        let layers = match &c.layers {
            None => None,
            Some(list) => {
                if list.is_empty() || list.len() > MAX_LAYERS {
                    return Err(GrantError::LayerCount);
                }
                let mut names: Vec<Box<str>> = Vec::with_capacity(list.len());
                for (i, l) in list.iter().enumerate() {
                    if !valid_layer(l) {
                        return Err(GrantError::BadLayer(i));
                    }
                    if !names.iter().any(|n| **n == **l) {
                        names.push(l.as_str().into());
                    }
                }
                Some(names.into_boxed_slice())
            }
        };
        // A box beyond the projection's edge (north of 85.0511°, say)
        // projects to a line and covers no tile.
        let rects = spans
            .iter()
            .map(Span::project)
            .filter(|r| r.x0 < r.x1 && r.y0 < r.y1)
            .collect();
        Ok(Grant {
            min_zoom,
            max_zoom,
            bounds: c.bounds.as_ref().map(|b| b.iter().map(|b| b.map(quantize)).collect()),
            spans: spans.into_boxed_slice(),
            rects,
            layers,
        })
    }

    /// The claim that carries this grant (limited dimensions only).
    pub fn to_claim(&self) -> GrantClaim {
        GrantClaim {
            minzoom: (self.min_zoom != 0).then_some(self.min_zoom),
            maxzoom: (self.max_zoom != MAX_ZOOM).then_some(self.max_zoom),
            bounds: self.bounds.as_ref().map(|b| b.to_vec()),
            layers: self.layers.as_ref().map(|l| l.iter().map(|s| s.to_string()).collect()),
        }
    }

    pub fn zoom_range(&self) -> (u8, u8) {
        (self.min_zoom, self.max_zoom)
    }

    pub fn layers(&self) -> Option<&[Box<str>]> {
        self.layers.as_deref()
    }

    /// Whether `tile` of `layer` may be read. `layer` is the route's layer
    /// for the request (`None` when the route names none): a grant that
    /// limits layers refuses a request whose layer is unknown.
    #[inline]
    pub fn check(&self, tile: Tile, layer: Option<&str>) -> Result<(), Dimension> {
        if tile.z < self.min_zoom || tile.z > self.max_zoom {
            return Err(Dimension::Zoom);
        }
        if self.bounds.is_some() {
            let t = tile.extent();
            if !self.rects.iter().any(|r| r.overlaps(&t)) {
                return Err(Dimension::Area);
            }
        }
        if let Some(names) = &self.layers {
            match layer {
                Some(l) if names.iter().any(|n| **n == *l) => {}
                _ => return Err(Dimension::Layer),
            }
        }
        Ok(())
    }

    /// Whether this grant lies within `parent`, or the first dimension in
    /// which it does not.
    pub fn within(&self, parent: &Grant) -> Result<(), Dimension> {
        if self.min_zoom < parent.min_zoom || self.max_zoom > parent.max_zoom {
            return Err(Dimension::Zoom);
        }
        if parent.bounds.is_some() {
            if self.bounds.is_none() {
                return Err(Dimension::Area);
            }
            if !self.spans.iter().all(|s| parent.spans.iter().any(|p| s.within(p))) {
                return Err(Dimension::Area);
            }
        }
        if let Some(allowed) = &parent.layers {
            match &self.layers {
                Some(mine) if mine.iter().all(|l| allowed.contains(l)) => {}
                _ => return Err(Dimension::Layer),
            }
        }
        Ok(())
    }

    /// The grant of a token derived from one holding `self`: `requested`
    /// with each dimension it leaves out taken from `self`, and refused
    /// unless within `self`.
    pub fn narrow(&self, requested: Option<&GrantClaim>) -> Result<Grant, NarrowError> {
        let Some(r) = requested else {
            return Ok(self.clone());
        };
        let own = self.to_claim();
        let merged = GrantClaim {
            minzoom: r.minzoom.or(own.minzoom),
            maxzoom: r.maxzoom.or(own.maxzoom),
            bounds: r.bounds.clone().or(own.bounds),
            layers: r.layers.clone().or(own.layers),
        };
        let g = Grant::from_claim(&merged).map_err(NarrowError::Invalid)?;
        g.within(self).map_err(NarrowError::Beyond)?;
        Ok(g)
    }
}

/// Why a requested grant cannot be given.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NarrowError {
    #[error("{0}")]
    Invalid(GrantError),
    #[error("the requested grant is beyond the credential's in {}", .0.as_str())]
    Beyond(Dimension),
}

fn valid_layer(l: &str) -> bool {
    (1..=64).contains(&l.len())
        && l.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn grant(json: &str) -> Grant {
        Grant::from_claim(&serde_json::from_str(json).unwrap()).unwrap()
    }

    /// The tile that holds a point, at zoom `z`.
    fn tile_at(lon: f64, lat: f64, z: u8) -> Tile {
        let n = (1u64 << z) as f64;
        let x = ((lon_to_x(lon) * n).floor() as u32).min((n as u32).saturating_sub(1));
        let y = ((lat_to_y(lat) * n).floor() as u32).min((n as u32).saturating_sub(1));
        Tile::xyz(z as u32, x, y).unwrap()
    }

    /// A tile's extent in degrees: west, south, east, north.
    fn degrees(t: Tile) -> [f64; 4] {
        let n = (1u64 << t.z) as f64;
        let lon = |x: f64| x / n * 360.0 - 180.0;
        let lat = |y: f64| (std::f64::consts::PI * (1.0 - 2.0 * y / n)).sinh().atan().to_degrees();
        [
            lon(t.x as f64),
            lat(t.y as f64 + 1.0),
            lon(t.x as f64 + 1.0),
            lat(t.y as f64),
        ]
    }

    #[test]
    fn zoom_limits_are_inclusive() {
        let g = grant(r#"{"minzoom":2,"maxzoom":14}"#);
        assert_eq!(g.check(Tile::xyz(1, 0, 0).unwrap(), None), Err(Dimension::Zoom));
        assert_eq!(g.check(Tile::xyz(2, 0, 0).unwrap(), None), Ok(()));
        assert_eq!(g.check(Tile::xyz(14, 0, 0).unwrap(), None), Ok(()));
        assert_eq!(g.check(Tile::xyz(15, 0, 0).unwrap(), None), Err(Dimension::Zoom));
    }

    #[test]
    fn tiles_outside_the_pyramid_do_not_exist() {
        assert!(Tile::xyz(0, 1, 0).is_none());
        assert!(Tile::xyz(3, 8, 0).is_none());
        assert!(Tile::xyz(31, 0, 0).is_none());
        assert_eq!(Tile::tms(1, 0, 0).unwrap(), Tile::xyz(1, 0, 1).unwrap());
        assert_eq!(Tile::tms(30, 5, 0).unwrap().y, (1u32 << 30) - 1);
    }

    #[test]
    fn a_tile_straddling_the_box_is_inside_one_touching_it_is_not() {
        // Europe-ish box; zoom 1 tiles: (0,0) north-west, (1,0) north-east.
        let g = grant(r#"{"bounds":[[-10,35,30,60]]}"#);
        assert_eq!(g.check(Tile::xyz(1, 0, 0).unwrap(), None), Ok(()), "straddles lon 0");
        assert_eq!(g.check(Tile::xyz(1, 1, 0).unwrap(), None), Ok(()));
        assert_eq!(
            g.check(Tile::xyz(1, 0, 1).unwrap(), None),
            Err(Dimension::Area),
            "south of the equator"
        );
        // A box whose west edge is exactly the prime meridian: the western
        // tiles only touch it.
        let east = grant(r#"{"bounds":[[0,10,20,20]]}"#);
        assert_eq!(east.check(Tile::xyz(1, 0, 0).unwrap(), None), Err(Dimension::Area));
        assert_eq!(east.check(Tile::xyz(1, 1, 0).unwrap(), None), Ok(()));
    }

    #[test]
    fn antimeridian_boxes_cover_both_sides_and_not_the_middle() {
        let g = grant(r#"{"bounds":[[170,-10,-170,10]]}"#);
        assert_eq!(g.check(tile_at(175.0, 0.5, 8), None), Ok(()));
        assert_eq!(g.check(tile_at(-175.0, 0.5, 8), None), Ok(()));
        assert_eq!(g.check(tile_at(0.0, 0.5, 8), None), Err(Dimension::Area));
        assert_eq!(g.check(tile_at(160.0, 0.5, 8), None), Err(Dimension::Area));
    }

    #[test]
    fn boxes_reaching_the_poles_cover_the_top_and_bottom_rows() {
        let g = grant(r#"{"bounds":[[-180,80,180,90]]}"#);
        assert_eq!(g.check(Tile::xyz(10, 500, 0).unwrap(), None), Ok(()));
        assert_eq!(g.check(Tile::xyz(10, 500, 1023).unwrap(), None), Err(Dimension::Area));
        let south = grant(r#"{"bounds":[[-180,-90,180,-80]]}"#);
        assert_eq!(south.check(Tile::xyz(10, 500, 1023).unwrap(), None), Ok(()));
        // Beyond the projection's edge a box covers nothing.
        let beyond = grant(r#"{"bounds":[[-180,86,180,90]]}"#);
        assert_eq!(beyond.check(Tile::xyz(10, 500, 0).unwrap(), None), Err(Dimension::Area));
    }

    #[test]
    fn layers_must_be_named_and_among_the_grant() {
        let g = grant(r#"{"layers":["basemap","poi"]}"#);
        let t = Tile::xyz(3, 1, 1).unwrap();
        assert_eq!(g.check(t, Some("basemap")), Ok(()));
        assert_eq!(g.check(t, Some("satellite")), Err(Dimension::Layer));
        assert_eq!(g.check(t, None), Err(Dimension::Layer), "a route without a layer");
        assert_eq!(Grant::unlimited().check(t, None), Ok(()));
    }

    #[test]
    fn bad_claims_name_their_problem() {
        let e = |j: &str| Grant::from_claim(&serde_json::from_str(j).unwrap()).unwrap_err();
        assert_eq!(e(r#"{"minzoom":31}"#), GrantError::ZoomOutOfRange);
        assert_eq!(e(r#"{"minzoom":9,"maxzoom":3}"#), GrantError::ZoomOrder);
        assert_eq!(e(r#"{"bounds":[]}"#), GrantError::BoxCount);
        assert_eq!(e(r#"{"bounds":[[0,0,10,10],[0,10,10,0]]}"#), GrantError::BadBox(1));
        assert_eq!(e(r#"{"bounds":[[0,0,0,10]]}"#), GrantError::BadBox(0));
        assert_eq!(e(r#"{"bounds":[[-181,0,10,10]]}"#), GrantError::BadBox(0));
        assert_eq!(e(r#"{"bounds":[[0,-91,10,10]]}"#), GrantError::BadBox(0));
        assert_eq!(e(r#"{"layers":[]}"#), GrantError::LayerCount);
        assert_eq!(e(r#"{"layers":["ok","no/slash"]}"#), GrantError::BadLayer(1));
        assert!(
            serde_json::from_str::<GrantClaim>(r#"{"zoom":3}"#).is_err(),
            "unknown fields refused"
        );
        assert!(serde_json::from_str::<GrantClaim>(r#"{"bounds":[[0,0,1]]}"#).is_err());
    }

    #[test]
    fn narrowing_fills_left_out_dimensions_from_the_parent() {
        let parent = grant(r#"{"maxzoom":14,"bounds":[[-10,35,30,60]],"layers":["basemap","poi"]}"#);
        let child = parent
            .narrow(Some(&serde_json::from_str(r#"{"layers":["poi"]}"#).unwrap()))
            .unwrap();
        assert_eq!(child.zoom_range(), (0, 14));
        assert_eq!(child.to_claim().bounds, Some(vec![[-10.0, 35.0, 30.0, 60.0]]));
        assert_eq!(child.layers().unwrap().len(), 1);
        assert_eq!(parent.narrow(None).unwrap(), parent);
        let beyond = |j: &str| parent.narrow(Some(&serde_json::from_str(j).unwrap())).unwrap_err();
        assert_eq!(beyond(r#"{"maxzoom":15}"#), NarrowError::Beyond(Dimension::Zoom));
        assert_eq!(
            beyond(r#"{"bounds":[[-20,35,30,60]]}"#),
            NarrowError::Beyond(Dimension::Area)
        );
        assert_eq!(
            beyond(r#"{"layers":["satellite"]}"#),
            NarrowError::Beyond(Dimension::Layer)
        );
        assert_eq!(
            beyond(r#"{"minzoom":5,"maxzoom":4}"#),
            NarrowError::Invalid(GrantError::ZoomOrder)
        );
        // An unlimited parent gives anything valid.
        assert!(Grant::unlimited()
            .narrow(Some(&serde_json::from_str(r#"{"maxzoom":3}"#).unwrap()))
            .is_ok());
    }

    #[test]
    fn antimeridian_children_must_fit_the_parents_pieces() {
        let parent = grant(r#"{"bounds":[[170,-10,-170,10]]}"#);
        assert!(grant(r#"{"bounds":[[175,-5,-175,5]]}"#).within(&parent).is_ok());
        assert!(grant(r#"{"bounds":[[172,-5,178,5]]}"#).within(&parent).is_ok());
        assert_eq!(
            grant(r#"{"bounds":[[160,-5,-175,5]]}"#).within(&parent),
            Err(Dimension::Area)
        );
        assert_eq!(
            grant(r#"{"bounds":[[-175,-5,175,5]]}"#).within(&parent),
            Err(Dimension::Area),
            "the long way round"
        );
    }

    fn arb_box() -> impl Strategy<Value = [f64; 4]> {
        (-180.0f64..180.0, -90.0f64..89.0, 0.5f64..120.0, 0.5f64..60.0).prop_map(|(w, s, dw, dh)| {
            let mut e = w + dw;
            if e > 180.0 {
                e -= 360.0; // crosses the antimeridian
            }
            [w, s, e, (s + dh).min(90.0)]
        })
    }

    fn arb_grant() -> impl Strategy<Value = GrantClaim> {
        (
            proptest::option::of(0u8..=8),
            proptest::option::of(8u8..=30),
            proptest::option::of(proptest::collection::vec(arb_box(), 1..4)),
            proptest::option::of(proptest::sample::subsequence(vec!["a", "b", "c", "d"], 1..4)),
        )
            .prop_map(|(lo, hi, bounds, layers)| GrantClaim {
                minzoom: lo,
                maxzoom: hi,
                bounds,
                layers: layers.map(|l| l.into_iter().map(String::from).collect()),
            })
    }

    fn arb_tile() -> impl Strategy<Value = Tile> {
        (0u32..=20).prop_flat_map(|z| {
            let n = 1u32 << z;
            (Just(z), 0..n, 0..n).prop_map(|(z, x, y)| Tile::xyz(z, x, y).unwrap())
        })
    }

    proptest! {
        /// The property that makes derived tokens safe: whatever a grant
        /// within its parent allows, the parent allows too.
        #[test]
        fn a_grant_within_its_parent_never_allows_more(
            parent in arb_grant(), child in arb_grant(), tiles in proptest::collection::vec(arb_tile(), 32),
            layer in proptest::sample::select(vec![None, Some("a"), Some("b"), Some("e")]),
        ) {
            let parent = Grant::from_claim(&parent).unwrap();
            if let Ok(child) = parent.narrow(Some(&child)) {
                for t in tiles {
                    if child.check(t, layer).is_ok() {
                        prop_assert!(parent.check(t, layer).is_ok(), "{t:?} allowed by the child only");
                    }
                }
            }
        }

        /// A tile that holds a point of a box is inside; a tile whose
        /// extent (in degrees) is clear of every box is outside.
        #[test]
        fn the_area_check_matches_the_geography(b in arb_box(), z in 0u8..=18, fx in 0.01f64..0.99, fy in 0.01f64..0.99, other in arb_tile()) {
            let g = Grant::from_claim(&GrantClaim { bounds: Some(vec![b]), ..Default::default() }).unwrap();
            let [w, s, e, n] = b;
            let width = if w < e { e - w } else { e + 360.0 - w };
            let mut lon = w + fx * width;
            if lon > 180.0 { lon -= 360.0; }
            let lat = s + fy * (n - s);
            if lat.abs() < MAX_LATITUDE - 0.01 {
                prop_assert_eq!(g.check(tile_at(lon, lat, z), None), Ok(()));
            }
            let [tw, ts, te, tn] = degrees(other);
            let clear_of = |w: f64, e: f64| te <= w || tw >= e;
            let lon_clear = if w < e { clear_of(w, e) } else { clear_of(w, 180.0) && clear_of(-180.0, e) };
            if lon_clear || tn <= s || ts >= n {
                prop_assert_eq!(g.check(other, None), Err(Dimension::Area));
            }
        }

        /// Inside is inherited downwards: a tile outside the area has no
        /// child inside it, so zooming in never uncovers refused data.
        #[test]
        fn children_of_an_outside_tile_are_outside(g in arb_grant(), t in arb_tile()) {
            let g = Grant::from_claim(&GrantClaim { minzoom: None, maxzoom: None, layers: None, ..g }).unwrap();
            if t.z < MAX_ZOOM && g.check(t, None).is_err() {
                for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                    let c = Tile::xyz(t.z as u32 + 1, 2 * t.x + dx, 2 * t.y + dy).unwrap();
                    prop_assert!(g.check(c, None).is_err());
                }
            }
        }

        #[test]
        fn claims_round_trip(c in arb_grant()) {
            let g = Grant::from_claim(&c).unwrap();
            let json = serde_json::to_string(&g.to_claim()).unwrap();
            let back = Grant::from_claim(&serde_json::from_str(&json).unwrap()).unwrap();
            prop_assert_eq!(back, g);
        }
    }
}
