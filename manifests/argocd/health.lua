-- Argo CD health of a HardeningProfile (hardening.plumbing.ai), read from its status.
--
-- Argo CD sets the global `obj` to the live object and takes the table this script returns:
-- {status = "Healthy" | "Progressing" | "Degraded", message = "..."}.
--
-- The operator summarises the profile's children in the profile's own conditions, since
-- Argo CD derives an application's health from its direct resources only. In order:
--
-- 1. No status yet, or a status about an older generation of the spec: Progressing. The
--    conditions would describe a spec the operator has not reconciled yet.
-- 2. Degraded=True or Conflict=True: Degraded. Conflict means another profile governs the
--    namespace, so this one does nothing: worth a red mark, not a wait.
-- 3. Ready=True: Healthy.
-- 4. Ready=False for a reason other than Pending or Progressing: Degraded (drift found in
--    Audit mode, children that fail, an invalid spec).
-- 5. Anything else (Ready unknown, missing, or still pending): Progressing.

local function find_condition(conditions, kind)
  for _, condition in ipairs(conditions or {}) do
    if condition.type == kind then
      return condition
    end
  end
  return nil
end

local function describe(condition, fallback)
  if condition == nil then
    return fallback
  end
  local message = condition.message
  if message == nil or message == "" then
    message = condition.reason or fallback
  end
  return message
end

local function health()
  local status = obj.status
  if status == nil then
    return "Progressing", "Waiting for the operator to report on the profile."
  end

  local generation = obj.metadata and obj.metadata.generation
  local observed = status.observedGeneration
  if observed == nil or (generation ~= nil and observed < generation) then
    return "Progressing", "Waiting for the operator to reconcile the latest spec."
  end

  local conditions = status.conditions
  for _, kind in ipairs({"Degraded", "Conflict"}) do
    local condition = find_condition(conditions, kind)
    if condition ~= nil and condition.status == "True" then
      return "Degraded", describe(condition, kind)
    end
  end

  local ready = find_condition(conditions, "Ready")
  if ready ~= nil and ready.status == "True" then
    return "Healthy", describe(ready, "Ready")
  end
  if ready ~= nil and ready.status == "False"
      and ready.reason ~= "Pending" and ready.reason ~= "Progressing" then
    return "Degraded", describe(ready, "Not ready")
  end
  return "Progressing", describe(ready, "Waiting for the profile to become ready.")
end

local result = {}
result.status, result.message = health()
return result
