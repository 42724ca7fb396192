# AI agents and their capabilities: the most an agent may ever touch. What it may touch for a
# person is the intersection with that person's departments (demo.authorization).
package demo.agents

# The agent name in a SPIFFE ID of the exact form spiffe://<trust domain>/agent/<name>.
name(spiffe_id) := parts[4] if {
	parts := split(spiffe_id, "/")
	count(parts) == 5
	parts[0] == "spiffe:"
	parts[1] == ""
	parts[2] == data.precinct.trust_domain
	parts[3] == "agent"
	parts[4] != ""
}

known(agent) if is_array(data.precinct.agents[agent].capabilities)

capabilities(agent) := {c | some c in data.precinct.agents[agent].capabilities; is_string(c)}
