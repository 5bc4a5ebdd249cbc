//! Where a new room goes, pure: the least loaded live node that is not draining.

use super::nodes::NodeInfo;

/// People a room just placed is counted as until its node's next heartbeat shows them: a
/// group's usual size.
pub const EXPECTED_ROOM_SIZE: u32 = 8;

/// The node a new room should be hosted on: fewest participants, then fewest rooms, then the
/// lowest CPU, then the smallest id (so that two nodes choosing at once agree); the rooms placed
/// since a node's last heartbeat count as rooms of [`EXPECTED_ROOM_SIZE`]. `None` when no live
/// node takes new rooms.
pub fn least_loaded(nodes: &[NodeInfo]) -> Option<&NodeInfo> {
    let load = |n: &NodeInfo| {
        (
            n.participants
                .saturating_add(n.placed.saturating_mul(EXPECTED_ROOM_SIZE)),
            n.rooms.saturating_add(n.placed),
        )
    };
    nodes.iter().filter(|n| !n.draining).min_by(|a, b| {
        load(a)
            .cmp(&load(b))
            .then(a.cpu.total_cmp(&b.cpu))
            .then(a.id.cmp(&b.id))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, rooms: u32, participants: u32, cpu: f32) -> NodeInfo {
        NodeInfo {
            id: id.to_owned(),
            http: format!("http://{id}.test"),
            media: "127.0.0.1:40000".parse().unwrap(),
            rooms,
            participants,
            cpu,
            draining: false,
            placed: 0,
        }
    }

    #[test]
    fn a_new_room_goes_to_the_node_with_the_fewest_participants() {
        let nodes = [
            node("a", 2, 30, 0.1),
            node("b", 5, 12, 0.9),
            node("c", 1, 40, 0.0),
        ];
        assert_eq!(least_loaded(&nodes).unwrap().id, "b");
    }

    #[test]
    fn ties_go_to_fewer_rooms_then_less_cpu_then_the_smaller_id() {
        let nodes = [node("a", 3, 10, 0.2), node("b", 2, 10, 0.9)];
        assert_eq!(least_loaded(&nodes).unwrap().id, "b");
        let nodes = [node("a", 2, 10, 0.5), node("b", 2, 10, 0.2)];
        assert_eq!(least_loaded(&nodes).unwrap().id, "b");
        let nodes = [node("b", 2, 10, 0.2), node("a", 2, 10, 0.2)];
        assert_eq!(least_loaded(&nodes).unwrap().id, "a");
    }

    #[test]
    fn rooms_placed_since_the_last_heartbeat_count_until_it_shows_them() {
        let mut busy = node("a", 1, 10, 0.1);
        busy.placed = 2;
        let nodes = [busy, node("b", 2, 20, 0.1)];
        // a: 10 + 2 × 8 = 26 people, b: 20.
        assert_eq!(least_loaded(&nodes).unwrap().id, "b");
    }

    #[test]
    fn a_draining_node_takes_no_new_room_and_none_left_means_none() {
        let mut idle = node("a", 0, 0, 0.0);
        idle.draining = true;
        let nodes = [idle.clone(), node("b", 9, 90, 0.9)];
        assert_eq!(least_loaded(&nodes).unwrap().id, "b");
        assert!(least_loaded(&[idle]).is_none());
        assert!(least_loaded(&[]).is_none());
    }
}
