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

/// A route's tile parameters, with a reader of its own template to take
/// them from a path that already took this route.
#[derive(Debug, Clone)]
pub struct TileRoute {
    reader: Reader,
    /// The route names a layer parameter.
    layer: bool,
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
        let reader = Reader::new(template, &names)?;
        Ok(TileRoute {
            reader,
            layer: layer.is_some(),
            scheme,
            out_of_grant,
        })
    }

    /// The tile and layer a (normalised) path of this route names.
    #[inline]
    pub fn tile_of<'p>(&self, path: &'p str) -> Result<(Tile, Option<&'p str>), TileRefusal> {
        let mut values: [&'p str; 4] = [""; 4];
        self.reader.read(path, &mut values)?;
        let (z, x, y) = (number(values[0])?, number(values[1])?, number(values[2])?);
        let tile = match self.scheme {
            TileScheme::Xyz => Tile::xyz(z, x, y),
            TileScheme::Tms => Tile::tms(z, x, y),
        }
        .ok_or(TileRefusal::NoSuchTile)?;
        let layer = self.layer.then_some(values[3]);
        Ok((tile, layer))
    }
}

/// Byte equality without a `memcmp` call for empty or short strings: the
/// literals here are a few bytes, and glibc's AVX-512 `memcmp` on an empty
/// slice makes a masked load from its dangling pointer, which costs a
/// microcode assist (about 100 ns) on some CPUs.
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// A coordinate: ASCII digits only (no sign, no spaces, no leading `+`).
#[inline]
fn number(v: &str) -> Result<u32, TileRefusal> {
    if v.is_empty() || v.len() > 10 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TileRefusal::NoSuchTile);
    }
    v.parse().map_err(|_| TileRefusal::NoSuchTile)
}

/// How a route's template reads its tile parameters: segment by segment,
/// without a router. Built from templates whose parameters each fill a
/// whole `/` segment between an optional literal prefix and suffix
/// (`{y}.pbf`, `@{z}`); any other template (a catch-all after the tile
/// segments, a segment with two parameters, escaped braces) keeps the
/// general matcher.
#[derive(Debug, Clone)]
enum Reader {
    Segments(Vec<Segment>),
    Matcher {
        matcher: matchit::Router<()>,
        names: [Box<str>; 4],
    },
}

/// One `/`-separated segment of a template.
#[derive(Debug, Clone)]
enum Segment {
    Literal(Box<str>),
    /// A parameter: its slot among z, x, y, layer (`None`: a parameter
    /// the tile does not use), with the literal text around it.
    Param {
        slot: Option<u8>,
        prefix: Box<str>,
        suffix: Box<str>,
    },
}

impl Reader {
    /// `names` are z, x, y and optionally layer, in that order.
    fn new(template: &str, names: &[&str]) -> Result<Reader, String> {
        // The general matcher checks the template itself either way.
        let mut matcher = matchit::Router::new();
        matcher.insert(template, ()).map_err(|e| e.to_string())?;
        if let Some(segments) = Reader::segments(template, names) {
            return Ok(Reader::Segments(segments));
        }
        let name = |i: usize| Box::from(names.get(i).copied().unwrap_or(""));
        Ok(Reader::Matcher {
            matcher,
            names: [name(0), name(1), name(2), name(3)],
        })
    }

    fn segments(template: &str, names: &[&str]) -> Option<Vec<Segment>> {
        if template.contains("{{") || template.contains("}}") || template.contains("{*") {
            return None;
        }
        let mut out = Vec::new();
        for seg in template.split('/') {
            match (seg.find('{'), seg.rfind('{'), seg.find('}'), seg.rfind('}')) {
                (None, None, None, None) => out.push(Segment::Literal(seg.into())),
                (Some(open), Some(last_open), Some(close), Some(last_close))
                    if open == last_open && close == last_close && open < close =>
                {
                    let name = &seg[open + 1..close];
                    let slot = names.iter().position(|n| *n == name).map(|i| i as u8);
                    out.push(Segment::Param {
                        slot,
                        prefix: seg[..open].into(),
                        suffix: seg[close + 1..].into(),
                    });
                }
                _ => return None,
            }
        }
        Some(out)
    }

    /// Fill `values` (z, x, y, layer) from `path`; a path that does not
    /// fit the template names no tile.
    #[inline]
    fn read<'p>(&self, path: &'p str, values: &mut [&'p str; 4]) -> Result<(), TileRefusal> {
        match self {
            Reader::Segments(segments) => {
                let mut parts = path.split('/');
                for s in segments {
                    let part = parts.next().ok_or(TileRefusal::NoSuchTile)?;
                    match s {
                        Segment::Literal(l) => {
                            if !same(part.as_bytes(), l.as_bytes()) {
                                return Err(TileRefusal::NoSuchTile);
                            }
                        }
                        Segment::Param { slot, prefix, suffix } => {
                            let (p, s) = (prefix.len(), suffix.len());
                            let b = part.as_bytes();
                            if b.len() <= p + s
                                || !same(&b[..p], prefix.as_bytes())
                                || !same(&b[b.len() - s..], suffix.as_bytes())
                            {
                                return Err(TileRefusal::NoSuchTile);
                            }
                            // Both ends equal whole strings, so these are
                            // character boundaries (`get` refuses otherwise).
                            let v = part.get(p..part.len() - s).ok_or(TileRefusal::NoSuchTile)?;
                            if let Some(i) = slot {
                                values[usize::from(*i)] = v;
                            }
                        }
                    }
                }
                match parts.next() {
                    None => Ok(()),
                    Some(_) => Err(TileRefusal::NoSuchTile),
                }
            }
            Reader::Matcher { matcher, names } => {
                let m = matcher.at(path).map_err(|_| TileRefusal::NoSuchTile)?;
                for (i, n) in names.iter().enumerate() {
                    if !n.is_empty() {
                        values[i] = m.params.get(&**n).ok_or(TileRefusal::NoSuchTile)?;
                    }
                }
                Ok(())
            }
        }
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

    /// The segment reader reads every path exactly as the general matcher
    /// would: the same values, or both refuse.
    mod reader_agrees_with_the_matcher {
        use super::super::Reader;
        use proptest::prelude::*;

        const TEMPLATES: &[(&str, &[&str])] = &[
            ("/tiles/{layer}/{z}/{x}/{y}.pbf", &["z", "x", "y", "layer"]),
            ("/t/{z}/{x}/{y}", &["z", "x", "y"]),
            ("/{z}/{x}/{y}@2x.png", &["z", "x", "y"]),
            ("/v1/{set}/{z}/{x}/{y}.mvt", &["z", "x", "y"]),
            ("/wmts/{layer}/{style}/{z}/{y}/{x}.png", &["z", "x", "y", "layer"]),
        ];

        fn matcher(template: &str, names: &[&str]) -> Reader {
            let mut matcher = matchit::Router::new();
            matcher.insert(template, ()).unwrap();
            let name = |i: usize| Box::from(names.get(i).copied().unwrap_or(""));
            Reader::Matcher {
                matcher,
                names: [name(0), name(1), name(2), name(3)],
            }
        }

        fn read<'p>(r: &Reader, path: &'p str) -> Option<[&'p str; 4]> {
            let mut v = [""; 4];
            r.read(path, &mut v).ok().map(|()| v)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]
            #[test]
            fn on_any_path(t in 0..TEMPLATES.len(), path in "(/(tiles|t|v1|wmts|[0-9]{1,3}|[a-z.@2xpngbfmvt]{0,6}|\\.pbf|)){1,8}") {
                let (template, names) = TEMPLATES[t];
                let segments = Reader::new(template, names).unwrap();
                prop_assert!(matches!(segments, Reader::Segments(_)), "{template}");
                prop_assert_eq!(read(&segments, &path), read(&matcher(template, names), &path), "{} on {}", template, path);
            }

            #[test]
            fn on_paths_of_the_template(t in 0..TEMPLATES.len(), vals in proptest::collection::vec("[0-9a-z.]{0,4}", 6)) {
                let (template, names) = TEMPLATES[t];
                let mut path = String::new();
                let mut i = 0;
                for seg in template.split('/').skip(1) {
                    path.push('/');
                    match (seg.find('{'), seg.find('}')) {
                        (Some(o), Some(c)) => {
                            path.push_str(&seg[..o]);
                            path.push_str(&vals[i]);
                            path.push_str(&seg[c + 1..]);
                            i += 1;
                        }
                        _ => path.push_str(seg),
                    }
                }
                let segments = Reader::new(template, names).unwrap();
                prop_assert_eq!(read(&segments, &path), read(&matcher(template, names), &path), "{} on {}", template, path);
            }
        }
    }

    #[test]
    fn templates_the_segment_reader_cannot_take_keep_the_matcher() {
        let r = TileRoute::new(
            "/t/{z}/{x}/{y}/{*rest}",
            "z",
            "x",
            "y",
            None,
            TileScheme::Xyz,
            OutOfGrant::NotFound,
        )
        .unwrap();
        assert!(matches!(r.reader, Reader::Matcher { .. }));
        assert_eq!(r.tile_of("/t/3/1/2/a/b"), Ok((Tile::xyz(3, 1, 2).unwrap(), None)));
    }
}
