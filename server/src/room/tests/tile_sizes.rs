//! `tile_sizes`: what a viewer says of the size of others' tiles reaches the media path for
//! people here now, and nothing else.

use super::*;
use circle_protocol::TileSize;

fn sizes(entries: &[(&str, u32)]) -> M {
    M::TileSizes {
        sizes: entries
            .iter()
            .map(|&(p, height)| TileSize {
                participant: pid(p),
                height,
            })
            .collect(),
    }
}

fn told(effects: &[Effect]) -> Option<Vec<(String, u32)>> {
    effects.iter().find_map(|e| match e {
        Effect::TileSizes { viewer, sizes } if viewer.as_str() == "a" => Some(
            sizes
                .iter()
                .map(|(p, h)| (p.as_str().to_owned(), *h))
                .collect(),
        ),
        _ => None,
    })
}

#[test]
fn the_sizes_of_others_here_reach_the_media_path_and_other_ids_are_ignored() {
    let mut r = group();
    let e = req(
        &mut r,
        0,
        "a",
        sizes(&[("b", 90), ("f", 0), ("a", 720), ("nobody", 360)]),
    );
    assert_eq!(reply(&e, "a"), Ok(()));
    assert_eq!(
        told(&e),
        Some(vec![("b".to_owned(), 90), ("f".to_owned(), 0)])
    );
}

#[test]
fn too_many_sizes_or_an_impossible_height_is_a_bad_request_and_changes_nothing() {
    let mut r = group();
    let many: Vec<(&str, u32)> = vec![("b", 90); 65];
    let e = req(&mut r, 0, "a", sizes(&many));
    assert_eq!(reply(&e, "a"), Err(ErrorCode::BadRequest));
    assert_eq!(told(&e), None);
    let e = req(&mut r, 0, "a", sizes(&[("b", 100_000)]));
    assert_eq!(reply(&e, "a"), Err(ErrorCode::BadRequest));
    assert_eq!(told(&e), None);
}
