@echo off
rem The technician's check: waits for ONE camera, downloads what it offers,
rem checks every file (photo decodes, video decodes with the length its metadata
rem gives, time and position sane) and keeps this window open with the verdict.
rem Edit the settings below (right click, Edit), then double-click.
setlocal EnableExtensions DisableDelayedExpansion

rem TCP port the camera connects to: the "Port" in the camera settings of the tracker.
set "PORT=5000"
rem Folder where the checked files are kept (spaces are fine).
set "OUTPUT_DIR=verify-downloads"
rem Seconds to wait for the camera to connect.
set "WAIT_SECONDS=600"
rem Files the camera must send, e.g. videof,photof (empty: whatever it offers).
set "EXPECT="

cd /d "%~dp0"
set "BIN=%DASHCAM_BIN%"
if not defined BIN set "BIN=dashcam-server.exe"
if not exist "%BIN%" goto :no_exe
set "EXPECT_FLAG="
if defined EXPECT set "EXPECT_FLAG=--expect %EXPECT%"
echo Waiting up to %WAIT_SECONDS% s for one camera on port %PORT%.
echo Allow dashcam-server through the Windows firewall if asked, then let the camera connect.
echo.
"%BIN%" verify --port %PORT% --timeout %WAIT_SECONDS% --output-dir "%OUTPUT_DIR%" %EXPECT_FLAG% %*
if errorlevel 1 goto :failed
echo.
echo VERDICT: PASS. Every file the camera sent is good. The files are in %OUTPUT_DIR%
pause
exit /b 0

:failed
echo.
echo VERDICT: FAIL. See the lines above: each FAIL says what is wrong with which file.
pause
exit /b 1

:no_exe
echo dashcam-server.exe is not beside this file: unzip the whole folder, then run verify.bat from it.
pause
exit /b 2
