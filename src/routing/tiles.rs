//! A route's tile coordinates: which path parameters name the zoom, column,
//! row and layer (`tiles = { z = "z", x = "x", y = "y", layer = "layer" }`
//! on `/tiles/{layer}/{z}/{x}/{y}.pbf`), read from a request path so the
//! token's tile grant (`crate::grants`) can be checked. Built and checked
//! when configuration loads.

use crate::grants::{Dimension, Tile};

/// The row order of a route's `y` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TileScheme {
    /// Row 0 at the north edge (web maps, XYZ/slippy tiles).
    Xyz,
    /// Row 0 at the south edge (TMS, MBTiles).
    Tms,
}

/// What a route answers for a tile outside the token's grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutOfGrant {
    /// 404, the gateway's own "no route" answer: indistinguishable from a
    /// path the gateway serves nothing for.
    NotFound,
    /// 403 JSON error `tile_not_granted`, naming the dimension.
    Forbidden,
    /// 204 with no body.
    NoContent,
    /// 200 with an empty body.
    Empty,
}

/// A tile the token may not read, or a path that names no tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TileRefusal {
    /// Outside the token's grant in `dimension`; answered per `mode`.
    OutOfGrant { mode: OutOfGrant, dimension: Dimension },
    /// A coordinate that is not a number, or a column or row beyond the
    /// zoom's: 404, whatever the route's `out_of_grant`.
    NoSuchTile,
}

/// A route's tile parameters, with a matcher of its own template to read
/// them from a path that already took this route.
#[derive(Debug, Clone)]
pub struct TileRoute {
    matcher: matchit::Router<()>,
    z: Box<str>,
    x: Box<str>,
    y: Box<str>,
    layer: Option<Box<str>>,
    pub scheme: TileScheme,
    pub out_of_grant: OutOfGrant,
}

impl TileRoute {
    /// The tile parameters of the route with path template `template`;
    /// each name must be a `{name}` parameter of it (not a `{*catch-all}`).
    pub fn new(
        template: &str,
        z: &str,
        x: &str,
        y: &str,
        layer: Option<&str>,
        scheme: TileScheme,
        out_of_grant: OutOfGrant,
    ) -> Result<TileRoute, String> {
        let params = params_of(template);
        let mut names = vec![z, x, y];
        names.extend(layer);
        for n in &names {
            if !params.contains(n) {
                return Err(format!(
                    "\"{n}\" is not a parameter of the path \"{template}\" (it has: {})",
                    if params.is_empty() {
                        "none".to_string()
                    } else {
                        params.join(", ")
                    }
                ));
            }
        }
        for (i, a) in names.iter().enumerate() {
            if names[..i].contains(a) {
                return Err(format!("\"{a}\" names two tile parameters"));
            }
        }
        let mut matcher = matchit::Router::new();
        matcher.insert(template, ()).map_err(|e| e.to_string())?;
        Ok(TileRoute {
            matcher,
            z: z.into(),
            x: x.into(),
            y: y.into(),
            layer: layer.map(Box::from),
            scheme,
            out_of_grant,
        })
    }

    /// The tile and layer a (normalised) path of this route names.
    #[inline]
    pub fn tile_of<'p>(&self, path: &'p str) -> Result<(Tile, Option<&'p str>), TileRefusal> {
        let m = self.matcher.at(path).map_err(|_| TileRefusal::NoSuchTile)?;
        let num = |name: &str| -> Result<u32, TileRefusal> {
            let v = m.params.get(name).ok_or(TileRefusal::NoSuchTile)?;
            // Digits only: no sign, no spaces, no leading `+`.
            if v.is_empty() || v.len() > 10 || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(TileRefusal::NoSuchTile);
            }
            v.parse().map_err(|_| TileRefusal::NoSuchTile)
        };
        let (z, x, y) = (num(&self.z)?, num(&self.x)?, num(&self.y)?);
        let tile = match self.scheme {
            TileScheme::Xyz => Tile::xyz(z, x, y),
            TileScheme::Tms => Tile::tms(z, x, y),
        }
        .ok_or(TileRefusal::NoSuchTile)?;
        let layer = match &self.layer {
            None => None,
            Some(n) => Some(m.params.get(&**n).ok_or(TileRefusal::NoSuchTile)?),
        };
        Ok((tile, layer))
    }
}

/// The `{name}` parameters of a path template (catch-alls left out).
fn params_of(template: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else { break };
        let name = &after[..end];
        if !name.starts_with('*') {
            out.push(name);
        }
        rest = &after[end + 1..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(scheme: TileScheme) -> TileRoute {
        TileRoute::new(
            "/tiles/{layer}/{z}/{x}/{y}.pbf",
            "z",
            "x",
            "y",
            Some("layer"),
            scheme,
            OutOfGrant::NotFound,
        )
        .unwrap()
    }

    #[test]
    fn coordinates_are_read_from_the_path() {
        let r = route(TileScheme::Xyz);
        assert_eq!(
            r.tile_of("/tiles/basemap/3/1/2.pbf"),
            Ok((Tile::xyz(3, 1, 2).unwrap(), Some("basemap")))
        );
        let t = route(TileScheme::Tms);
        assert_eq!(
            t.tile_of("/tiles/basemap/3/1/2.pbf"),
            Ok((Tile::xyz(3, 1, 5).unwrap(), Some("basemap")))
        );
    }

    #[test]
    fn paths_that_name_no_tile_are_refused() {
        let r = route(TileScheme::Xyz);
        for p in [
            "/tiles/b/3/8/0.pbf",
            "/tiles/b/31/0/0.pbf",
            "/tiles/b/x/0/0.pbf",
            "/tiles/b/3/-1/0.pbf",
            "/tiles/b/3/+1/0.pbf",
            "/tiles/b/3/99999999999/0.pbf",
        ] {
            assert_eq!(r.tile_of(p), Err(TileRefusal::NoSuchTile), "{p}");
        }
    }

    #[test]
    fn parameter_names_must_be_the_templates() {
        let e = TileRoute::new(
            "/t/{z}/{x}/{y}",
            "zoom",
            "x",
            "y",
            None,
            TileScheme::Xyz,
            OutOfGrant::NotFound,
        )
        .unwrap_err();
        assert!(
            e.contains("\"zoom\" is not a parameter") && e.contains("z, x, y"),
            "{e}"
        );
        assert!(TileRoute::new(
            "/t/{z}/{x}/{*y}",
            "z",
            "x",
            "y",
            None,
            TileScheme::Xyz,
            OutOfGrant::NotFound
        )
        .is_err());
        assert!(TileRoute::new(
            "/t/{z}/{x}/{y}",
            "z",
            "z",
            "y",
            None,
            TileScheme::Xyz,
            OutOfGrant::NotFound
        )
        .is_err());
    }
}
