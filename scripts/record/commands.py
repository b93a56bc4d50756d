"""The commands Switchyard sends a node to open a room and join a leg (src/node/commands.rs), as
the recordings send them."""

PROFILE = "switchyard"


def control_leg(u, room, flags="mute|deaf", profile=PROFILE, extra_vars=""):
    """The originate arguments that open a room: a null/ control leg into it."""
    return ("{origination_uuid=%s,switchyard_role=control,switchyard_room=%s,"
            "origination_caller_id_name=switchyard,origination_caller_id_number=0%s}"
            "null/switchyard &conference(%s@%s+flags{%s})"
            % (u, room, extra_vars, room, profile, flags))


def join_dialplan(room, flags="mute", profile=PROFILE):
    """The inline dialplan a parked leg is transferred to when it joins a room."""
    return "conference:%s@%s+flags{%s},park: inline" % (room, profile, flags)
