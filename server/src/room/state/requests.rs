//! Answers each request from a joined participant: the permission table first, then the rule for
//! what was asked (the floor, check-ins and reactions, media; moderation is `moderation.rs`).

use super::*;

impl Room {
    pub(super) fn apply(
        &mut self,
        now: Millis,
        from: &ParticipantId,
        id: Option<RequestId>,
        message: ClientMessage,
    ) -> Result<Reply, RoomError> {
        let me = self.member(from).ok_or(RoomError::NotJoined)?;
        let role = me.role;
        let admitted = me.is_admitted();
        use ClientMessage as M;
        match message {
            M::Ping => {
                self.send(from, ServerMessage::Pong);
                return Ok(Reply::Ok);
            }
            M::Leave => {
                if let Some(id) = id {
                    self.send(from, ServerMessage::Ok { id });
                }
                self.depart(from, LeaveReason::Left);
                return Ok(Reply::Sent);
            }
            M::Hello { .. } | M::Resume { .. } => {
                return Err(RoomError::Conflict(
                    "this connection has already joined".into(),
                ))
            }
            _ => {}
        }
        permissions::check(&message, role, admitted)?;
        // The permission table has spoken; each concern answers its own requests.
        match message {
            M::Admit { .. }
            | M::Deny { .. }
            | M::AdmitAll
            | M::Mute { .. }
            | M::Unmute { .. }
            | M::Remove { .. }
            | M::LockRoom { .. }
            | M::EndSession => self.moderate(now, from, id, message),
            M::SetFloorMode { .. }
            | M::GrantFloor { .. }
            | M::GrantNext
            | M::RevokeFloor
            | M::SetTurnLimit { .. }
            | M::InviteToSpeak { .. }
            | M::LowerHand { .. }
            | M::RaiseHand { .. }
            | M::ReleaseFloor
            | M::PassFloor { .. }
            | M::AnswerInvite { .. } => self.floor_request(now, from, role, message),
            M::StartCheckIn { .. }
            | M::CloseCheckIn { .. }
            | M::React { .. }
            | M::NeedHelp { .. }
            | M::AnswerCheckIn { .. } => self.private_or_anonymous(now, from, message),
            M::SetMedia { .. } | M::TileSizes { .. } | M::Sdp { .. } | M::Ice { .. } => {
                self.own_media(from, id, message)
            }
            M::Ping | M::Leave | M::Hello { .. } | M::Resume { .. } => {
                unreachable!("answered before the admission check")
            }
        }
    }

    /// The talking stick, its queue and its invitations.
    fn floor_request(
        &mut self,
        now: Millis,
        from: &ParticipantId,
        role: Role,
        message: ClientMessage,
    ) -> Result<Reply, RoomError> {
        use ClientMessage as M;
        match message {
            M::SetFloorMode { mode } => {
                if self.floor.set_mode(mode) {
                    self.announce_floor();
                }
            }
            M::GrantFloor { participant } => {
                self.expect_speaker(&participant)?;
                if self.floor.holds(&participant) {
                    return Err(RoomError::Conflict(
                        "that member already holds the stick".into(),
                    ));
                }
                self.give_stick(now, &participant);
            }
            M::GrantNext => {
                let next = self
                    .floor
                    .head_of_queue()
                    .cloned()
                    .ok_or_else(|| RoomError::Conflict("the queue is empty".into()))?;
                self.give_stick(now, &next);
            }
            M::RevokeFloor => {
                let holder = self.floor.revoke()?;
                self.hand(&holder, HandStatus::Revoked, None);
                self.announce_floor();
            }
            M::SetTurnLimit { seconds } => {
                if self.floor.set_turn_limit(now, seconds)? {
                    self.announce_room_settings();
                    if self.floor.holder().is_some() {
                        self.announce_floor();
                    }
                }
            }
            M::InviteToSpeak { participant } => {
                self.expect_speaker(&participant)?;
                self.floor.invite(&participant)?;
                self.send(&participant, ServerMessage::InvitedToSpeak);
            }
            M::LowerHand { participant } => {
                let target = match (role, participant) {
                    (Role::Facilitator, Some(p)) => p,
                    (Role::Facilitator, None) => {
                        return Err(RoomError::BadRequest(
                            "a facilitator names whose hand to lower in `participant`".into(),
                        ))
                    }
                    (_, Some(p)) if &p != from => {
                        return Err(RoomError::Forbidden(
                            "only a facilitator may lower someone else's hand".into(),
                        ))
                    }
                    (_, _) => from.clone(),
                };
                if self.member(&target).is_none() {
                    return Err(RoomError::NotFound(
                        "no such participant in this room".into(),
                    ));
                }
                self.floor.lower(&target)?;
                let status = if &target == from {
                    HandStatus::Cancelled
                } else {
                    HandStatus::Denied
                };
                self.hand(&target, status, None);
                self.announce_floor();
            }
            M::RaiseHand { note } => {
                let note = match note.map(|n| n.trim().to_owned()) {
                    Some(n) if n.chars().count() > MAX_HAND_NOTE_CHARS => {
                        return Err(RoomError::BadRequest(format!(
                            "a note is at most {MAX_HAND_NOTE_CHARS} characters"
                        )))
                    }
                    Some(n) if n.is_empty() => None,
                    other => other,
                };
                let position = self.floor.raise(from, note)?;
                self.hand(from, HandStatus::Queued, Some(position));
                self.announce_floor();
            }
            M::ReleaseFloor => {
                self.floor.release(from)?;
                self.hand(from, HandStatus::Released, None);
                self.announce_floor();
            }
            M::PassFloor { to } => {
                if !self.floor.holds(from) {
                    return Err(RoomError::Conflict("you do not hold the stick".into()));
                }
                if self.member(&to).is_none() {
                    return Err(RoomError::NotFound(
                        "no such participant in this room".into(),
                    ));
                }
                self.floor.check_pass(from, &to)?;
                self.floor.release(from)?;
                self.hand(from, HandStatus::Released, None);
                self.give_stick(now, &to);
            }
            M::AnswerInvite { accept } => {
                self.floor.answer_invite(from)?;
                for f in self.facilitator_ids() {
                    self.send(
                        &f,
                        ServerMessage::InviteAnswered {
                            participant: from.clone(),
                            accepted: accept,
                        },
                    );
                }
                // Only members are ever invited (`expect_speaker`), so the stick may go to them.
                if accept {
                    self.give_stick(now, from);
                }
            }
            other => unreachable!("`{}` is not a floor request", other.type_name()),
        }
        Ok(Reply::Ok)
    }

    /// Check-ins and reactions (anonymous), and help requests (to facilitators only).
    fn private_or_anonymous(
        &mut self,
        now: Millis,
        from: &ParticipantId,
        message: ClientMessage,
    ) -> Result<Reply, RoomError> {
        use ClientMessage as M;
        match message {
            M::StartCheckIn { question, options } => {
                let check_in = self.check_ins.start(&question, &options)?;
                self.broadcast(ServerMessage::CheckIn(check_in));
            }
            M::CloseCheckIn { check_in } => {
                let result = self
                    .check_ins
                    .close(&check_in, self.config.anonymity_threshold)?;
                self.broadcast(ServerMessage::CheckInResult {
                    check_in,
                    counts: result.counts,
                    responses: result.responses,
                });
            }
            M::React { kind } => {
                let present = self
                    .members
                    .iter()
                    .filter(|m| m.is_admitted() && !m.is_reconnecting())
                    .count();
                self.reactions.react(now, from, kind, present)?;
            }
            M::NeedHelp { note } => {
                let note = note.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
                if note
                    .as_ref()
                    .is_some_and(|n| n.chars().count() > MAX_HELP_NOTE_CHARS)
                {
                    return Err(RoomError::BadRequest(format!(
                        "a note is at most {MAX_HELP_NOTE_CHARS} characters"
                    )));
                }
                for f in self.facilitator_ids() {
                    self.send(
                        &f,
                        ServerMessage::HelpRequested {
                            participant: from.clone(),
                            note: note.clone(),
                        },
                    );
                }
            }
            M::AnswerCheckIn { check_in, option } => {
                self.check_ins.answer(from, &check_in, option)?;
            }
            other => unreachable!(
                "`{}` is not a check-in, a reaction or a help request",
                other.type_name()
            ),
        }
        Ok(Reply::Ok)
    }

    /// A participant's own media: what they say they send, and their WebRTC negotiation.
    fn own_media(
        &mut self,
        from: &ParticipantId,
        id: Option<RequestId>,
        message: ClientMessage,
    ) -> Result<Reply, RoomError> {
        use ClientMessage as M;
        match message {
            M::SetMedia {
                audio,
                video,
                screen,
            } => {
                // Judged whole before anything changes: a refused share changes nothing.
                if let Some(Some(track)) = &screen {
                    if !is_msid_track_id(track) {
                        return Err(RoomError::BadRequest(
                            "screen must be the a=msid track id of the screen-share track".into(),
                        ));
                    }
                    if !self.may_share(from) {
                        return Err(RoomError::Forbidden(
                            "only a facilitator, or the member holding the stick, may share a screen"
                                .into(),
                        ));
                    }
                }
                let member = self.member_mut(from).expect("checked above");
                let mut changed = (member.audio, member.video) != (audio, video);
                member.audio = audio;
                member.video = video;
                if let Some(screen) = screen {
                    changed |= member.screen != screen;
                    member.screen = screen;
                }
                if changed {
                    self.announce_update(from);
                }
            }
            M::TileSizes { sizes } => {
                if sizes.len() > MAX_TILE_SIZES {
                    return Err(RoomError::BadRequest(format!(
                        "tile_sizes carries at most {MAX_TILE_SIZES} entries"
                    )));
                }
                if sizes.iter().any(|s| s.height > MAX_TILE_HEIGHT) {
                    return Err(RoomError::BadRequest(format!(
                        "a tile is at most {MAX_TILE_HEIGHT} pixels high"
                    )));
                }
                // Only what is someone else's here now: a stale or made-up id changes nothing.
                let sizes: Vec<(ParticipantId, u32)> = sizes
                    .into_iter()
                    .filter(|s| &s.participant != from && self.is_admitted(&s.participant))
                    .map(|s| (s.participant, s.height))
                    .collect();
                if !sizes.is_empty() {
                    self.effects.push(Effect::TileSizes {
                        viewer: from.clone(),
                        sizes,
                    });
                }
            }
            M::Sdp { pc, sdp_type, sdp } => {
                let signal = Signal::Sdp { pc, sdp_type, sdp };
                self.effects.push(Effect::Media {
                    from: from.clone(),
                    id,
                    signal,
                });
                return Ok(Reply::Sent);
            }
            M::Ice { pc, candidate } => {
                let signal = Signal::Ice { pc, candidate };
                self.effects.push(Effect::Media {
                    from: from.clone(),
                    id,
                    signal,
                });
                return Ok(Reply::Sent);
            }
            other => unreachable!(
                "`{}` is not about the sender's own media",
                other.type_name()
            ),
        }
        Ok(Reply::Ok)
    }

    /// The participant may be given or offered the stick.
    pub(super) fn expect_speaker(&self, id: &ParticipantId) -> Result<(), RoomError> {
        let m = self
            .member(id)
            .filter(|m| m.is_admitted())
            .ok_or_else(|| RoomError::NotFound("no such participant in this room".into()))?;
        match m.role {
            Role::Member => Ok(()),
            Role::Facilitator => Err(RoomError::Conflict(
                "facilitators may always speak; the stick is for members".into(),
            )),
            Role::Observer => Err(RoomError::Conflict("observers do not speak".into())),
        }
    }

    pub(super) fn give_stick(&mut self, now: Millis, to: &ParticipantId) {
        if let Some(previous) = self.floor.give(now, to) {
            self.hand(&previous, HandStatus::Revoked, None);
        }
        self.hand(to, HandStatus::Granted, None);
        self.announce_floor();
    }
}
