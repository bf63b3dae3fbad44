-- sockscope.lua: the process labels of 'sockscope capture' as Wireshark fields.
--
-- sockscope writes each packet's process as pcapng comments, in the layout ptcpdump
-- uses: "PID: 1234\nCmd: nginx\nArgs: nginx: worker process", then
-- "UserId: 33\nUserName: www-data", and "ContainerId: ..." when known. A loopback
-- packet names both ends when different processes hold them. This post-dissector
-- reads the comments into fields for display filters and columns:
--
--   sockscope.pid == 1234        sockscope.process == "nginx"     sockscope.user == "www-data"
--   sockscope.uid, sockscope.args, sockscope.container
--
-- Use:  tshark -X lua_script:contrib/wireshark/sockscope.lua -r capture.pcapng -Y 'sockscope.pid == 1234'
-- or copy it into Wireshark's personal Lua plugins folder (Help > About > Folders).

local proto = Proto("sockscope", "sockscope process")

local f_pid = ProtoField.uint32("sockscope.pid", "PID", base.DEC)
local f_process = ProtoField.string("sockscope.process", "Process")
local f_args = ProtoField.string("sockscope.args", "Arguments")
local f_uid = ProtoField.uint32("sockscope.uid", "User ID", base.DEC)
local f_user = ProtoField.string("sockscope.user", "User")
local f_container = ProtoField.string("sockscope.container", "Container")
proto.fields = { f_pid, f_process, f_args, f_uid, f_user, f_container }

local frame_comment = Field.new("frame.comment")

-- "Key: value" lines of one comment, as a table.
local function parse(text)
    local out = {}
    for line in string.gmatch(text, "[^\r\n]+") do
        local key, value = string.match(line, "^(%w+): ?(.*)$")
        if key then
            out[key] = value
        end
    end
    return out
end

function proto.dissector(tvb, pinfo, tree)
    local comments = { frame_comment() }
    if #comments == 0 then
        return
    end
    local current = nil
    for _, field in ipairs(comments) do
        local kv = parse(tostring(field.value))
        if kv.PID then
            local label = string.format("Process: %s (%s)", kv.Cmd or "?", kv.PID)
            current = tree:add(proto, label)
            current:add(f_pid, tonumber(kv.PID))
            if kv.Cmd then
                current:add(f_process, kv.Cmd)
            end
            if kv.Args then
                current:add(f_args, kv.Args)
            end
        elseif current ~= nil and kv.UserId then
            current:add(f_uid, tonumber(kv.UserId))
            if kv.UserName then
                current:add(f_user, kv.UserName)
            end
        elseif current ~= nil and kv.ContainerId then
            current:add(f_container, kv.ContainerId)
        end
    end
end

register_postdissector(proto)
