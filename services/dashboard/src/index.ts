export { DashboardIdp, type DashboardIdpOptions, type PublicJwk } from './idp.js';
export { PasswordBook, loadOrCreateDemoPasswords } from './people.js';
export {
  SESSION_COOKIE,
  startDashboard,
  type Dashboard,
  type DashboardOptions,
  type Peer,
} from './server.js';
