@echo off
rem Starts dashcam-server with the settings below. Edit them (right click, Edit), then double-click.
rem A DASHCAM_* variable already set in the environment wins over the value here,
rem and flags win over both, e.g. run_server.bat --allow-imei 350612071913857
setlocal EnableExtensions DisableDelayedExpansion

rem TCP port the cameras connect to: the "Port" in the camera settings of the tracker.
set "PORT=5000"
rem Folder where downloads go: <folder>\<IMEI>\<date>_<time>_<file>.h265 / .jpg + .json,
rem and <folder>\index.html, a gallery of everything received (open it in a browser).
rem Spaces are fine: set "OUTPUT_DIR=D:\camera downloads"
set "OUTPUT_DIR=downloads"
rem auto = every camera (DualCam, ADAS, DSM; protocol 5 and 6); or only one family: dualcam, adas, dsm
set "MODE=auto"
rem Ask each file's metadata (time, trigger, GPS; firmware 03.27.04 and later): 1 or 0 (true/false, yes/no, on/off)
set "METADATA=0"
rem Convert each video to mp4 with its sound (needs ffmpeg on PATH): 1 or 0
set "CONVERT=0"
rem The log is also written here.
set "LOG_FILE=logs\dashcam-server.log"
rem Log detail: info, or debug to see every packet in hex
set "LOG_LEVEL=info"

cd /d "%~dp0"
rem Notepad keeps spaces typed after a value ("METADATA=1 "): they are cut here.
rem (One call a line: a goto inside a call from a for loop misbehaves in Wine's cmd.)
call :trim PORT
call :trim OUTPUT_DIR
call :trim MODE
call :trim METADATA
call :trim CONVERT
call :trim LOG_FILE
call :trim LOG_LEVEL

set "BIN=%DASHCAM_BIN%"
if defined BIN goto :run
rem The release zip: dashcam-server.exe is beside this file, nothing to build.
if exist "dashcam-server.exe" set "BIN=dashcam-server.exe"
if defined BIN goto :run
rem A source tree: built with cargo.
set "BIN=target\release\dashcam-server.exe"
rem cargo rebuilds only what changed since the last build (a second or two when nothing did).
call :on_path cargo.exe
if not defined FOUND goto :no_cargo
echo Building dashcam-server (release) if the sources changed (the first build takes minutes)...
set "BUILD_LOG=%TEMP%\dashcam-server-build.log"
cargo build --release --quiet 2> "%BUILD_LOG%"
if errorlevel 1 goto :build_failed
goto :run

:no_cargo
if not exist "%BIN%" goto :no_rust
echo Note: cargo not found, running the dashcam-server.exe already built (it may be older than the sources).
goto :run

:run
if not defined DASHCAM_PORT set "DASHCAM_PORT=%PORT%"
if not defined DASHCAM_OUTPUT_DIR set "DASHCAM_OUTPUT_DIR=%OUTPUT_DIR%"
if not defined DASHCAM_MODE set "DASHCAM_MODE=%MODE%"
if not defined DASHCAM_METADATA set "DASHCAM_METADATA=%METADATA%"
if not defined DASHCAM_LOG_FILE set "DASHCAM_LOG_FILE=%LOG_FILE%"
if not defined RUST_LOG set "RUST_LOG=%LOG_LEVEL%"
if not defined DASHCAM_CONVERT call :convert_setting
"%BIN%" serve %*
if errorlevel 1 goto :stopped_with_error
echo.
echo dashcam-server stopped. The log is in %DASHCAM_LOG_FILE%
pause
exit /b 0

:stopped_with_error
echo.
echo dashcam-server stopped with an error: see the lines above, or %DASHCAM_LOG_FILE%
pause
exit /b 1

:convert_setting
for %%T in (1 true yes on) do if /i "%CONVERT%"=="%%T" set "DASHCAM_CONVERT=mp4"
exit /b 0

:trim
rem Cuts trailing spaces and tabs (up to 16) from the variable named %1.
rem Percent expansion, one test a call, no goto: Wine's cmd, which tests
rem this file, runs it as Windows does.
call set "TRIM_V=%%%1%%"
for /l %%i in (1,1,16) do call :trim_one
set "%1=%TRIM_V%"
set "TRIM_V="
exit /b 0
:trim_one
if not defined TRIM_V exit /b 0
if "%TRIM_V:~-1%"==" " set "TRIM_V=%TRIM_V:~0,-1%"
if not defined TRIM_V exit /b 0
if "%TRIM_V:~-1%"=="	" set "TRIM_V=%TRIM_V:~0,-1%"
exit /b 0

:on_path
rem FOUND = the full name of program %1 on PATH, or nothing. (Not "where":
rem Wine's, which tests this file, is a stub that always succeeds.)
set "FOUND="
for %%X in (%1) do set "FOUND=%%~$PATH:X"
exit /b 0

:build_failed
type "%BUILD_LOG%"
echo.
rem Rust on Windows links with the Microsoft C++ build tools, found without PATH:
rem cargo's own words tell when they are missing.
find "link.exe` not found" "%BUILD_LOG%" >nul 2>nul
if not errorlevel 1 goto :no_msvc
find "cl.exe" "%BUILD_LOG%" >nul 2>nul
if not errorlevel 1 goto :no_msvc
echo The build failed: see the lines above.
pause
exit /b 1

:no_msvc
echo The build failed: the Microsoft C++ build tools (link.exe) are missing. Rust on Windows needs them:
echo install "Build Tools for Visual Studio" with the "Desktop development with C++" workload from
echo https://visualstudio.microsoft.com/visual-cpp-build-tools/ then run this file again.
pause
exit /b 1

:no_rust
echo dashcam-server.exe is not built and cargo was not found: install Rust from https://rustup.rs
echo (and the Microsoft C++ build tools it asks for), then run this file again. See README.md.
pause
exit /b 1
