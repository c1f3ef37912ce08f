/**
 * Reading an MCU's /status and /metrics as an operator: on its admin listener (loopback by
 * default), or on the public address with the admin token (README, *Exposure*).
 */

/** The header /status and /metrics need when admin.token is set; none without a token. Default: MCU_ADMIN_TOKEN of this process. */
export function adminAuthHeaders(token: string | null | undefined = process.env.MCU_ADMIN_TOKEN): Record<string, string> {
  return token ? { authorization: `Bearer ${token}` } : {};
}
