//! `loopback/<exten>[/<context>]`: mod_loopback's pair of channels. The `-a` leg is the
//! originated channel (born under a temporary uuid, with CODEC events, then renamed to
//! `origination_uuid` by CHANNEL_UUID); the `-b` leg runs the extension (vanilla 9196: answer,
//! echo). The events follow the most common interleaving of captures 01/02.

use super::channel::{App, Channel, dialplan};
use super::core::State;
use super::events::now_micros;

impl State {
    /// `loopback/<exten>[/<context>]`: an `-a` leg (the originated channel, renamed from a
    /// temporary uuid to `origination_uuid`) and a `-b` leg that runs the extension.
    pub(crate) fn loopback_pair(
        &mut self,
        uuid: &str,
        rest: &str,
        vars: &[(String, String)],
        cid: (String, String),
    ) -> String {
        let mut parts = rest.split('/');
        let exten = parts.next().unwrap_or_default().to_owned();
        let context = parts.next().unwrap_or("default").to_owned();
        // The a-leg is born under a temporary uuid and without a caller profile.
        let tmp = uuid::Uuid::new_v4().to_string();
        let mut a = self.outbound_channel(&tmp, format!("loopback/{rest}-a"), &cid);
        a.destination = exten.clone();
        a.context = context.clone();
        a.source = "mod_loopback";
        a.state = ("CS_NONE", 0);
        a.profile = false;
        a.read_codec = false;
        a.write_codec = false;
        self.channels.insert(tmp.clone(), a);
        self.codec(&tmp, false);
        self.codec(&tmp, true);
        let Some(mut a) = self.channels.remove(&tmp) else {
            return tmp;
        };
        a.uuid = uuid.to_owned();
        a.name = format!("loopback/{exten}-a");
        a.profile = true;
        a.state = ("CS_NONE", 1);
        let session = a.session_id.to_string();
        for (k, v) in [
            ("direction", "outbound".to_owned()),
            ("is_outbound", "true".into()),
            ("session_id", session),
            ("read_codec", "L16".into()),
            ("read_rate", "8000".into()),
            ("write_codec", "L16".into()),
            ("write_rate", "8000".into()),
            ("channel_name", a.name.clone()),
            ("uuid", uuid.to_owned()),
            ("call_uuid", uuid.to_owned()),
        ] {
            a.set_var(k, v);
        }
        self.channels.insert(uuid.to_owned(), a);
        let old = [("Old-Unique-ID", tmp)];
        self.ch_event("CHANNEL_UUID", uuid, &old, &[], true);
        self.ch_event("CHANNEL_OUTGOING", uuid, &[], &[], false);
        self.set_state(uuid, "CS_INIT", 1);

        let b_uuid = uuid::Uuid::new_v4().to_string();
        let mut b = Channel::new(
            b_uuid.clone(),
            format!("loopback/{exten}-b"),
            false,
            now_micros(),
        );
        b.cid_name = cid.0.clone();
        b.cid_number = cid.1.clone();
        b.orig_cid_name = cid.0.clone();
        b.orig_cid_number = cid.1.clone();
        b.callee = Some(("Outbound Call".into(), "default".into()));
        b.destination = exten.clone();
        b.context = context;
        b.source = "mod_loopback";
        b.state = ("CS_NONE", 0);
        b.profile = false;
        b.read_codec = false;
        b.write_codec = false;
        b.partner = Some(uuid.to_owned());
        b.session_id = self.next_session();
        self.channels.insert(b_uuid.clone(), b);
        self.codec(&b_uuid, false);
        self.codec(&b_uuid, true);

        if let Some(a) = self.channels.get_mut(uuid) {
            for (k, v) in vars {
                a.set_var(k, v.clone());
            }
            a.set_var("originate_early_media", "true");
            a.set_var("originate_endpoint", "loopback");
            a.set_var("other_loopback_leg_uuid", b_uuid.clone());
            a.set_var("loopback_leg", "A");
            a.partner = Some(b_uuid.clone());
            a.state = ("CS_INIT", 2);
        }
        self.ch_event("CHANNEL_CREATE", uuid, &[], &[], true);
        self.ch_event("CHANNEL_ORIGINATE", uuid, &[], &[], true);
        self.set_state(uuid, "CS_ROUTING", 2);
        self.set_state(uuid, "CS_CONSUME_MEDIA", 7);

        if let Some(b) = self.channels.get_mut(&b_uuid) {
            b.profile = true;
            let session = b.session_id.to_string();
            for (k, v) in [
                ("direction", "inbound".to_owned()),
                ("uuid", b_uuid.clone()),
                ("call_uuid", b_uuid.clone()),
                ("session_id", session),
                ("channel_name", b.name.clone()),
                ("read_codec", "L16".into()),
                ("read_rate", "8000".into()),
                ("write_codec", "L16".into()),
                ("write_rate", "8000".into()),
            ] {
                b.set_var(k, v);
            }
            for (k, v) in vars {
                b.set_var(k, v.clone());
            }
            b.set_var("other_loopback_leg_uuid", uuid);
            b.set_var("loopback_leg", "B");
        }
        self.set_state(&b_uuid, "CS_INIT", 1);
        self.ch_event("CHANNEL_CREATE", &b_uuid, &[], &[], true);
        if let Some(b) = self.channels.get_mut(&b_uuid) {
            b.state = ("CS_ROUTING", 2);
        }
        self.set_callstate(&b_uuid, "RINGING", 2);
        self.set_state(&b_uuid, "CS_ROUTING", 2);
        self.set_state(&b_uuid, "CS_EXECUTE", 4);
        if let Some(b) = self.channels.get_mut(&b_uuid) {
            b.set_var("call_uuid", b_uuid.clone());
        }
        // The b-leg's extension: its first app answers, which answers the a-leg first.
        let mut b_apps = dialplan(&exten).into_iter();
        let first = b_apps.next();
        if first == Some(App::Answer) {
            self.execute_b_answer(uuid, &b_uuid);
        }
        let b_rest: Vec<App> = b_apps.collect();
        // Echo (or whatever follows) starts before the a-leg's caller id flip is announced.
        self.run_apps(&b_uuid, b_rest);
        if let Some(a) = self.channels.get_mut(uuid) {
            a.set_var("endpoint_disposition", "ANSWER");
            a.keep_pre_flip_cid();
            a.set_var("channel_cid_flipped", "yes");
            a.cid_name = "Outbound Call".into();
            a.cid_number = "default".into();
        }
        let direction = [("Direction", "RECV".to_owned())];
        self.ch_event("CALL_UPDATE", uuid, &direction, &[], true);
        uuid.to_owned()
    }

    /// The b-leg's `answer`: CHANNEL_EXECUTE on b, the a-leg answers, then b does.
    fn execute_b_answer(&mut self, a: &str, b: &str) {
        self.app_execute(b, &App::Answer);
        self.answer(a);
        self.answer(b);
        if let Some(ch) = self.channels.get_mut(b) {
            ch.set_var("endpoint_disposition", "ANSWER");
        }
        self.execute_complete(b);
    }
}
