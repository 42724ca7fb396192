# The decision: may this person, or this agent acting for this person, perform this action on
# this document? Input holds only identities that TypeScript already verified (token checks
# happen before evaluation: the Wasm target has no io.jwt.* built-ins):
#
#   {"person": "spiffe://<td>/user/<id>", "agent": "spiffe://<td>/agent/<id>",
#    "document": "DOC-001", "action": "read"}
#
# A delegated agent gets the intersection of its capabilities and the person's departments;
# an agent without a person gets nothing, public documents included.
package demo.authorization

import data.demo.agents
import data.demo.documents
import data.demo.users

person := users.name(input.person)

agent := agents.name(input.agent)

# Rules rather than inline calls: `not f(x)` with x undefined does not succeed (OPA evaluates
# the argument outside the negation), and an unparsable ID must read as "unknown".
known_person if users.known(person)

known_agent if agents.known(agent)

known_document if documents.known(input.document)

action_permitted if input.action in documents.permitted_actions

user_departments := {d | some d in users.departments(person)}

agent_capabilities := {c | some c in agents.capabilities(agent)}

required := {d | some d in documents.required(input.document)}

effective_permissions := user_departments & agent_capabilities if {
	input.person
	input.agent
} else := user_departments if {
	input.person
} else := set()

# The first matching line is the reason; its order is the order in which a request fails.
reason := "no_identity" if {
	not input.person
	not input.agent
} else := "agent_without_person" if {
	not input.person
} else := "unknown_person" if {
	not known_person
} else := "unknown_agent" if {
	input.agent
	not known_agent
} else := "unknown_document" if {
	not known_document
} else := "action_not_permitted" if {
	not action_permitted
} else := "public_document" if {
	documents.public(input.document)
} else := "person_has_department" if {
	not input.agent
	documents.grants(effective_permissions, input.document)
} else := "delegation_permits" if {
	documents.grants(effective_permissions, input.document)
} else := "person_lacks_department" if {
	not documents.grants(user_departments, input.document)
} else := "agent_lacks_capability"

allowing_reasons := {"public_document", "person_has_department", "delegation_permits"}

allow := reason in allowing_reasons

decision := {
	"allow": allow,
	"reason": reason,
	"details": {
		"user_departments": sort(user_departments),
		"agent_capabilities": sort(agent_capabilities),
		"effective_permissions": sort(effective_permissions),
		"required": sort(required),
	},
}
