# People and their departments. The directory is OPA data (data.precinct.users), so a
# deployment supplies its own; data/demo.json holds the demo's people.
package demo.users

# The user name in a SPIFFE ID of the exact form spiffe://<trust domain>/user/<name>.
# Undefined for any other form, another trust domain included: the reference demo read only
# the last two path segments, which would let spiffe://elsewhere/user/alice pass as alice.
name(spiffe_id) := parts[4] if {
	parts := split(spiffe_id, "/")
	count(parts) == 5
	parts[0] == "spiffe:"
	parts[1] == ""
	parts[2] == data.precinct.trust_domain
	parts[3] == "user"
	parts[4] != ""
}

known(user) if is_array(data.precinct.users[user].departments)

# A set, so the intersection with an agent's capabilities is one operator. Empty for an
# unknown user: no entry means no permissions.
departments(user) := {d | some d in data.precinct.users[user].departments; is_string(d)}
