//! FreeSWITCH vocabularies as enums, parsed once from the wire: event names and the `Action`
//! header of `conference::maintenance` events. Unknown words are kept, not refused, so a newer
//! FreeSWITCH never breaks the stream.

macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant,)*
            /// A word this build does not know, as received.
            Other(Box<str>),
        }

        impl $name {
            /// Parses the wire word (case-sensitive, as FreeSWITCH writes it).
            pub fn parse(s: &str) -> $name {
                match s {
                    $($text => $name::$variant,)*
                    other => $name::Other(other.into()),
                }
            }

            /// The wire word.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)*
                    $name::Other(s) => s,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

vocabulary! {
    /// `Event-Name`: the event types of `switch_event.c`.
    EventName {
        Custom = "CUSTOM",
        Clone = "CLONE",
        ChannelCreate = "CHANNEL_CREATE",
        ChannelDestroy = "CHANNEL_DESTROY",
        ChannelState = "CHANNEL_STATE",
        ChannelCallstate = "CHANNEL_CALLSTATE",
        ChannelAnswer = "CHANNEL_ANSWER",
        ChannelHangup = "CHANNEL_HANGUP",
        ChannelHangupComplete = "CHANNEL_HANGUP_COMPLETE",
        ChannelExecute = "CHANNEL_EXECUTE",
        ChannelExecuteComplete = "CHANNEL_EXECUTE_COMPLETE",
        ChannelHold = "CHANNEL_HOLD",
        ChannelUnhold = "CHANNEL_UNHOLD",
        ChannelBridge = "CHANNEL_BRIDGE",
        ChannelUnbridge = "CHANNEL_UNBRIDGE",
        ChannelProgress = "CHANNEL_PROGRESS",
        ChannelProgressMedia = "CHANNEL_PROGRESS_MEDIA",
        ChannelOutgoing = "CHANNEL_OUTGOING",
        ChannelPark = "CHANNEL_PARK",
        ChannelUnpark = "CHANNEL_UNPARK",
        ChannelApplication = "CHANNEL_APPLICATION",
        ChannelOriginate = "CHANNEL_ORIGINATE",
        ChannelUuid = "CHANNEL_UUID",
        Api = "API",
        Log = "LOG",
        InboundChan = "INBOUND_CHAN",
        OutboundChan = "OUTBOUND_CHAN",
        Startup = "STARTUP",
        Shutdown = "SHUTDOWN",
        Publish = "PUBLISH",
        Unpublish = "UNPUBLISH",
        Talk = "TALK",
        Notalk = "NOTALK",
        SessionCrash = "SESSION_CRASH",
        ModuleLoad = "MODULE_LOAD",
        ModuleUnload = "MODULE_UNLOAD",
        Dtmf = "DTMF",
        Message = "MESSAGE",
        PresenceIn = "PRESENCE_IN",
        NotifyIn = "NOTIFY_IN",
        PresenceOut = "PRESENCE_OUT",
        PresenceProbe = "PRESENCE_PROBE",
        MessageWaiting = "MESSAGE_WAITING",
        MessageQuery = "MESSAGE_QUERY",
        Roster = "ROSTER",
        Codec = "CODEC",
        BackgroundJob = "BACKGROUND_JOB",
        DetectedSpeech = "DETECTED_SPEECH",
        DetectedTone = "DETECTED_TONE",
        PrivateCommand = "PRIVATE_COMMAND",
        Heartbeat = "HEARTBEAT",
        Trap = "TRAP",
        AddSchedule = "ADD_SCHEDULE",
        DelSchedule = "DEL_SCHEDULE",
        ExeSchedule = "EXE_SCHEDULE",
        ReSchedule = "RE_SCHEDULE",
        ReloadXml = "RELOADXML",
        Notify = "NOTIFY",
        PhoneFeature = "PHONE_FEATURE",
        PhoneFeatureSubscribe = "PHONE_FEATURE_SUBSCRIBE",
        SendMessage = "SEND_MESSAGE",
        RecvMessage = "RECV_MESSAGE",
        RequestParams = "REQUEST_PARAMS",
        ChannelData = "CHANNEL_DATA",
        General = "GENERAL",
        Command = "COMMAND",
        SessionHeartbeat = "SESSION_HEARTBEAT",
        ClientDisconnected = "CLIENT_DISCONNECTED",
        ServerDisconnected = "SERVER_DISCONNECTED",
        SendInfo = "SEND_INFO",
        RecvInfo = "RECV_INFO",
        RecvRtcpMessage = "RECV_RTCP_MESSAGE",
        SendRtcpMessage = "SEND_RTCP_MESSAGE",
        CallSecure = "CALL_SECURE",
        Nat = "NAT",
        RecordStart = "RECORD_START",
        RecordStop = "RECORD_STOP",
        PlaybackStart = "PLAYBACK_START",
        PlaybackStop = "PLAYBACK_STOP",
        CallUpdate = "CALL_UPDATE",
        Failure = "FAILURE",
        SocketData = "SOCKET_DATA",
        MediaBugStart = "MEDIA_BUG_START",
        MediaBugStop = "MEDIA_BUG_STOP",
        ConferenceDataQuery = "CONFERENCE_DATA_QUERY",
        ConferenceData = "CONFERENCE_DATA",
        CallSetupReq = "CALL_SETUP_REQ",
        CallSetupResult = "CALL_SETUP_RESULT",
        CallDetail = "CALL_DETAIL",
        DeviceState = "DEVICE_STATE",
        Text = "TEXT",
        ShutdownRequested = "SHUTDOWN_REQUESTED",
        All = "ALL",
    }
}

vocabulary! {
    /// `Action` of a `conference::maintenance` event (mod_conference).
    ConferenceAction {
        ConferenceCreate = "conference-create",
        ConferenceDestroy = "conference-destroy",
        ConferenceHeartbeat = "conference-heartbeat",
        AddMember = "add-member",
        DelMember = "del-member",
        MuteMember = "mute-member",
        UnmuteMember = "unmute-member",
        DeafMember = "deaf-member",
        UndeafMember = "undeaf-member",
        HoldMember = "hold-member",
        UnholdMember = "unhold-member",
        KickMember = "kick-member",
        HupMember = "hup-member",
        DtmfMember = "dtmf-member",
        EnergyLevel = "energy-level",
        EnergyLevelMember = "energy-level-member",
        MaxEnergyLevelMember = "max-energy-level-member",
        VolumeLevel = "volume-level",
        VolumeInMember = "volume-in-member",
        VolumeOutMember = "volume-out-member",
        GainLevel = "gain-level",
        PlayFile = "play-file",
        PlayFileDone = "play-file-done",
        PlayFileMember = "play-file-member",
        PlayFileMemberDone = "play-file-member-done",
        SpeakText = "speak-text",
        SpeakTextMember = "speak-text-member",
        FloorChange = "floor-change",
        StartTalking = "start-talking",
        StopTalking = "stop-talking",
        MuteDetect = "mute-detect",
        StartRecording = "start-recording",
        StopRecording = "stop-recording",
        PauseRecording = "pause-recording",
        ResumeRecording = "resume-recording",
        Lock = "lock",
        Unlock = "unlock",
        Transfer = "transfer",
        BgdialResult = "bgdial-result",
        Dtmf = "dtmf",
        Execute = "execute_app",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_words_round_trip_and_unknown_words_are_kept() {
        assert_eq!(
            EventName::parse("CHANNEL_HANGUP_COMPLETE"),
            EventName::ChannelHangupComplete
        );
        assert_eq!(
            EventName::ChannelHangupComplete.as_str(),
            "CHANNEL_HANGUP_COMPLETE"
        );
        assert_eq!(EventName::parse("NEW_THING").as_str(), "NEW_THING");
        assert_eq!(
            ConferenceAction::parse("add-member"),
            ConferenceAction::AddMember
        );
        assert_eq!(
            ConferenceAction::parse("x-y"),
            ConferenceAction::Other("x-y".into())
        );
    }
}
