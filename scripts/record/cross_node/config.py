"""The configuration each node's copy gets on top of freeswitch-conf/ for node-to-node calls
(also quoted in fixtures/esl/10_cross_node.md):

* vars.xml: `node_sip_ip`, `node_sip_port`, `node_allowed_cidr` (env FS_NODE_SIP_IP,
  FS_NODE_SIP_PORT, FS_NODE_ALLOWED_CIDR);
* acl.conf.xml: the list `switchyard_nodes` (default deny, allow `node_allowed_cidr`);
* sofia.conf.xml: a second sofia profile `nodes` on its own port, context `nodes`, that ACL;
* dialplan/nodes.xml: the context `nodes`, which puts an incoming node leg into the room named by
  the request user, muted (`conference:<room>@switchyard+flags{mute|join-only}`, then hangup);
* on B only: a gateway `node_a` in the `nodes` profile pointing at A's node port, with OPTIONS
  pings (to see what pings tell about a dead node);
* with --inbound-timer only: rtp-timer-name soft in the `inbound` profile too.
"""

import os

NODE_VARS = """
  <!-- Node-to-node SIP (rooms that span media nodes): the second sofia profile "nodes". -->
  <X-PRE-PROCESS cmd="set" data="node_sip_ip=$${sip_listen_ip}"/>
  <X-PRE-PROCESS cmd="env-set" data="node_sip_ip=$FS_NODE_SIP_IP"/>
  <X-PRE-PROCESS cmd="set" data="node_sip_port=5070"/>
  <X-PRE-PROCESS cmd="env-set" data="node_sip_port=$FS_NODE_SIP_PORT"/>
  <X-PRE-PROCESS cmd="set" data="node_allowed_cidr=127.0.0.1/32"/>
  <X-PRE-PROCESS cmd="env-set" data="node_allowed_cidr=$FS_NODE_ALLOWED_CIDR"/>
"""

NODE_ACL = """    <!-- The other media nodes (their node_sip_ip): the only ones that may call the "nodes"
         profile. -->
    <list name="switchyard_nodes" default="deny">
      <node type="allow" cidr="$${node_allowed_cidr}"/>
    </list>
"""

NODE_PROFILE = """    <!--
      Node-to-node SIP: another media node bridges one of its callers into a room hosted here by
      calling sofia/nodes/<room_id>@<this node's node_sip_ip:node_sip_port>. The "nodes" context
      of dialplan/nodes.xml puts the leg into the room. Only the other nodes may call
      (switchyard_nodes in acl.conf.xml).
    -->
    <profile name="nodes">
@GATEWAYS@      <settings>
        <param name="sip-ip" value="$${node_sip_ip}"/>
        <param name="rtp-ip" value="$${node_sip_ip}"/>
        <param name="sip-port" value="$${node_sip_port}"/>
        <param name="dialplan" value="XML"/>
        <param name="context" value="nodes"/>
        <param name="auth-calls" value="false"/>
        <param name="apply-inbound-acl" value="switchyard_nodes"/>
        <param name="disable-register" value="true"/>
        <param name="manage-presence" value="false"/>
        <param name="inbound-codec-prefs" value="$${global_codec_prefs}"/>
        <param name="outbound-codec-prefs" value="$${global_codec_prefs}"/>
        <!--
          A timer on the legs' RTP: without one, a leg whose far end sends no RTP (the other node
          hung up or died) reads in 5-second polls, and the SIP messages queued for it (the other
          node's BYE) wait for the poll to end.
        -->
        <param name="rtp-timer-name" value="soft"/>
        <param name="user-agent-string" value="Switchyard"/>
        <param name="log-auth-failures" value="true"/>
      </settings>
    </profile>
"""

# test only (B): a gateway to A's node port that pings it with OPTIONS
NODE_GATEWAY = """      <gateways>
        <gateway name="node_a">
          <param name="proxy" value="127.0.0.1:@APORT@"/>
          <param name="register" value="false"/>
          <param name="ping" value="@PING@"/>
          <param name="ping-max" value="1"/>
          <param name="ping-min" value="1"/>
        </gateway>
      </gateways>
"""

NODE_DIALPLAN = """<include>
  <!--
    Calls from the other media nodes (the "nodes" sofia profile): the request user is the room id,
    the X-Switchyard-Session header names the caller's session on the other node. The leg joins
    the room muted, and only if this node hosts the room (join-only: no room is created); when
    it leaves the room (kick, room end) it hangs up, which ends the other node's bridge.
  -->
  <context name="nodes">
    <extension name="switchyard_node_leg">
      <!-- $1 is the capture of the LAST condition: keep the room condition last. -->
      <condition field="${sip_h_X-Switchyard-Session}" expression="^[A-Za-z0-9]{5}-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"/>
      <condition field="destination_number" expression="^([A-Za-z0-9]{5}-room-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$">
        <action application="set" data="switchyard_role=node_leg"/>
        <action application="set" data="media_timeout=@MEDIA_TIMEOUT@"/>
        <action application="conference" data="$1@switchyard+flags{mute|join-only}"/>
        <action application="hangup" data="NORMAL_CLEARING"/>
      </condition>
    </extension>
    <extension name="not_a_node_leg">
      <condition field="destination_number" expression="^.*$">
        <action application="hangup" data="UNALLOCATED_NUMBER"/>
      </condition>
    </extension>
  </context>
</include>
"""


def edit(conf, rel, old, new):
    """Replaces the one occurrence of `old` in conf/rel."""
    p = os.path.join(conf, rel)
    text = open(p).read()
    assert text.count(old) == 1, (rel, old)
    open(p, "w").write(text.replace(old, new))


def add_node_link(conf, gateway_to=None, ping=5, inbound_timer=False):
    edit(conf, "vars.xml", "</include>", NODE_VARS + "</include>")
    if inbound_timer:
        edit(conf, "autoload_configs/sofia.conf.xml",
             '        <param name="dialplan" value="XML"/>\n        <param name="context" value="public"/>',
             '        <param name="rtp-timer-name" value="soft"/>\n        <param name="dialplan" value="XML"/>\n'
             '        <param name="context" value="public"/>')
    edit(conf, "autoload_configs/acl.conf.xml", "  </network-lists>", NODE_ACL + "  </network-lists>")
    gw = ""
    if gateway_to:
        gw = NODE_GATEWAY.replace("@APORT@", str(gateway_to)).replace("@PING@", str(ping))
    edit(conf, "autoload_configs/sofia.conf.xml", "  </profiles>",
         NODE_PROFILE.replace("@GATEWAYS@", gw) + "  </profiles>")


def write_dialplan(conf, media_timeout):
    with open(os.path.join(conf, "dialplan", "nodes.xml"), "w") as f:
        f.write(NODE_DIALPLAN.replace("@MEDIA_TIMEOUT@", str(media_timeout)))
